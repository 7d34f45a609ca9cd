// ONNX models written from our own tensors: a graph builder and the handful of onnx.proto messages
// it needs (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), in
// the protocol buffers wire format. Used to hand a frozen module to onnxruntime (onnxruntime.ts),
// whose CPU kernels run inference faster than libtorch's on the machines we measured
// (ARCHITECTURE.md); the graph is built from the same weights the libtorch module holds.
//
// Wire format: each field is a varint key (field number << 3 | wire type) followed by a varint
// (type 0), 4 little-endian bytes (type 5) or a varint length and that many bytes (type 2).
// onnx.proto is proto2, so repeated scalars are written one field each (unpacked).
import { Tensor, type DType } from './tensor.js';

/** A message under construction: its bytes as chunks (weights are not copied until toBytes). */
interface Msg {
  chunks: Uint8Array[];
  length: number;
}

function varint(n: number | bigint): Uint8Array {
  // int64 fields: a negative value is its 64-bit two's complement (ten bytes)
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? byte | 0x80 : byte);
  } while (v);
  return Uint8Array.from(out);
}

class Fields implements Msg {
  chunks: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }
  int(field: number, n: number | bigint): this {
    return this.push(varint(field << 3)).push(varint(n));
  }
  float(field: number, x: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    return this.push(varint((field << 3) | 5)).push(b);
  }
  bytes(field: number, b: Uint8Array): this {
    return this.push(varint((field << 3) | 2))
      .push(varint(b.length))
      .push(b);
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, m: Msg): this {
    this.push(varint((field << 3) | 2)).push(varint(m.length));
    for (const c of m.chunks) this.push(c);
    return this;
  }
}

// onnx.proto's numbers
const ELEM_TYPE: Partial<Record<DType, number>> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};
const INT8 = 3; // onnx.proto's int8: no tensor dtype of ours, written from an Int8Array
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/** An attribute value: an integer, a list of integers, or a float (written as { f }). */
export type Attr = number | number[] | { f: number };

function attribute(name: string, a: Attr): Msg {
  const m = new Fields().str(1, name);
  if (typeof a === 'number') {
    if (!Number.isInteger(a))
      throw new TypeError(`ONNX attribute ${name}: ${a} is not an integer (write { f: ${a} } for a float)`);
    return m.int(3, a).int(20, ATTR_INT);
  }
  if (Array.isArray(a)) {
    for (const x of a) m.int(8, x);
    return m.int(20, ATTR_INTS);
  }
  return m.float(2, a.f).int(20, ATTR_FLOAT);
}

/** dims: numbers, or names for dimensions fixed only at run time (the batch). */
function valueInfo(name: string, dtype: DType, dims: Array<number | string>): Msg {
  const shape = new Fields();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Fields().int(1, d) : new Fields().str(2, d));
  const tensorType = new Fields().int(1, ELEM_TYPE[dtype]!).msg(2, shape);
  return new Fields().str(1, name).msg(2, new Fields().msg(1, tensorType));
}

/**
 * A graph built node by node. Values are named by strings; `op` returns the name of its output.
 * Initializers hold a copy of the tensor's bytes taken when added.
 */
export class OnnxGraph {
  private readonly nodes: Msg[] = [];
  private readonly initializers: Msg[] = [];
  private readonly inputs: Msg[] = [];
  private readonly outputs: Msg[] = [];
  private readonly opsets = new Map<string, number>();
  private count = 0;

  constructor(
    readonly name: string,
    opset: number,
  ) {
    this.opsets.set('', opset);
  }

  /** Uses a non-standard operator set (e.g. onnxruntime's 'com.microsoft', version 1). */
  useDomain(domain: string, version: number): this {
    this.opsets.set(domain, version);
    return this;
  }

  input(name: string, dtype: DType, dims: Array<number | string>): string {
    this.inputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  output(value: string, name: string, dtype: DType, dims: Array<number | string>): void {
    this.nodes.push(new Fields().str(1, value).str(2, name).str(3, `${name}_out`).str(4, 'Identity'));
    this.outputs.push(valueInfo(name, dtype, dims));
  }

  /**
   * A constant: a tensor (its current values), int64 numbers ([] dims: a scalar), or int8 values
   * (quantised weights, ours having no int8 tensors).
   */
  constant(
    name: string,
    value: Tensor | { int64: number[]; dims?: number[] } | { int8: Int8Array; dims: number[] },
  ): string {
    const m = new Fields();
    if (value instanceof Tensor) {
      const dtype = ELEM_TYPE[value.dtype];
      if (dtype === undefined) throw new TypeError(`ONNX initializer ${name}: dtype ${value.dtype} is not written`);
      for (const d of value.shape) m.int(1, d);
      m.int(2, dtype).str(8, name);
      const bytes = value.toTypedArray();
      m.bytes(9, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } else if ('int8' in value) {
      for (const d of value.dims) m.int(1, d);
      m.int(2, INT8).str(8, name);
      m.bytes(9, new Uint8Array(value.int8.buffer, value.int8.byteOffset, value.int8.byteLength));
    } else {
      for (const d of value.dims ?? [value.int64.length]) m.int(1, d);
      m.int(2, ELEM_TYPE.int64!).str(8, name);
      m.bytes(9, new Uint8Array(BigInt64Array.from(value.int64, BigInt).buffer));
    }
    this.initializers.push(m);
    return name;
  }

  /** A node of operator `type` (one output, named after the node); returns the output's name. */
  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}, o: { domain?: string } = {}): string {
    return this.ops(type, inputs, 1, attrs, o)[0]!;
  }

  /**
   * A node with `outputs` outputs (DynamicQuantizeLinear's value, scale and zero point; Split's
   * parts); returns their names. An input named '' is an optional input left out.
   */
  ops(
    type: string,
    inputs: string[],
    outputs: number,
    attrs: Record<string, Attr> = {},
    o: { domain?: string } = {},
  ): string[] {
    const id = `${type}_${this.count++}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${id}:${i}`);
    const m = new Fields();
    for (const i of inputs) m.str(1, i);
    for (const out of outs) m.str(2, out);
    m.str(3, id).str(4, type);
    for (const [k, v] of Object.entries(attrs)) m.msg(5, attribute(k, v));
    if (o.domain) {
      if (!this.opsets.has(o.domain)) throw new Error(`ONNX op ${type}: domain ${o.domain} not declared (useDomain)`);
      m.str(7, o.domain);
    }
    this.nodes.push(m);
    return outs;
  }

  /** The serialised ModelProto (IR version 8), ready for onnxruntime. */
  toBytes(): Uint8Array {
    const graph = new Fields();
    for (const n of this.nodes) graph.msg(1, n);
    graph.str(2, this.name);
    for (const t of this.initializers) graph.msg(5, t);
    for (const i of this.inputs) graph.msg(11, i);
    for (const o of this.outputs) graph.msg(12, o);
    const model = new Fields().int(1, 8).str(2, 'ous');
    for (const [domain, version] of this.opsets) model.msg(8, new Fields().str(1, domain).int(2, version));
    model.msg(7, graph);
    const out = new Uint8Array(model.length);
    let at = 0;
    for (const c of model.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}
