// The tensor engine: see src/torch/tensor.ts.
export {};
