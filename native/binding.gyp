{
  "targets": [
    {
      "target_name": "ous_torch",
      "sources": ["src/addon.cc", "src/ops.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node libtorch.cjs include)"
      ],
      "libraries": ["<!@(node libtorch.cjs libs)"],
      "ldflags": ["<!@(node libtorch.cjs ldflags)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "<!@(node libtorch.cjs cflags)"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
    }
  ]
}
