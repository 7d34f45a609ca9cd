// Tells binding.gyp where libtorch is: Debian's libtorch-dev by default, or the folder in env
// LIBTORCH (an unpacked libtorch zip, e.g. a CUDA build, or a Python torch's `torch/` folder).
// Usage: node libtorch.cjs include|libs|ldflags|cflags|nodedir
const fs = require('node:fs');
const path = require('node:path');

const what = process.argv[2];
if (what === 'nodedir') {
  // node-gyp's headers from this Node's own install (Debian's libnode-dev, NodeSource, nvm and the
  // official tarballs all have PREFIX/include/node), so that nothing is downloaded at build time.
  const prefix = path.dirname(path.dirname(process.execPath));
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) console.log(`--nodedir=${prefix}`);
  process.exit(0);
}
const root = process.env.LIBTORCH;
let out = [];

if (!root) {
  const inc = '/usr/include';
  if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h'))) {
    console.error('libtorch not found: install Debian\'s libtorch-dev (apt-get install libtorch-dev libopenblas0-pthread), or set LIBTORCH to a libtorch folder');
    process.exit(1);
  }
  if (what === 'include') out = [inc, path.join(inc, 'torch/csrc/api/include')];
  if (what === 'libs') out = ['-ltorch_cpu', '-lc10'];
  if (what === 'ldflags') out = [];
  if (what === 'cflags') out = [];
} else {
  const inc = path.join(root, 'include');
  const lib = path.join(root, 'lib');
  if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h'))) {
    console.error(`LIBTORCH=${root} has no include/ATen/ATen.h: point it at an unpacked libtorch folder`);
    process.exit(1);
  }
  const has = (name) => fs.existsSync(path.join(lib, name));
  if (what === 'include') out = [inc, path.join(inc, 'torch/csrc/api/include')];
  if (what === 'libs') {
    // The CUDA kernels register themselves when libtorch_cuda loads, and nothing references it
    // by symbol, so it must be linked with --no-as-needed or the linker drops it.
    out = ['-L' + lib, '-ltorch_cpu', '-lc10'];
    if (has('libtorch_cuda.so')) out.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-ltorch', '-Wl,--as-needed');
  }
  if (what === 'ldflags') out = ['-Wl,-rpath,' + lib];
  if (what === 'cflags') {
    // Official pre-cxx11 builds need the old std::string ABI; TORCH_CXX11_ABI=0 selects it.
    const abi = process.env.TORCH_CXX11_ABI ?? '1';
    out = ['-D_GLIBCXX_USE_CXX11_ABI=' + (abi === '0' ? '0' : '1')];
  }
}
process.stdout.write(out.join(' '));
