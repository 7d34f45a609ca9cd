// The operation table: one row per exported function, each a direct call into ATen, with its arity
// (the arguments it reads; Args refuses a read past it, and a call with more). Argument order
// follows PyTorch's; optional arguments may be undefined. The TypeScript side's one list of the
// ops, OPS in src/torch/native.ts, gives them types; the loader checks the names and arities here
// against it. src/torch gives them defaults; nothing here knows about models.
#include "addon.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/core/grad_mode.h>  // at::GradMode: libtorch 2.x no longer includes it indirectly
#include <torch/version.h>

#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <fstream>

namespace ous {
namespace {

using A = Args;
using V = Napi::Value;

int64_t reduction(const std::string& r) {
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw ArgError("reduction must be 'mean', 'sum' or 'none', not '" + r + "'");
}

// Binary ops take a tensor or a number as their second operand.
#define BINARY(name, fn)                                                    \
  {name, [](A& a) -> V {                                                    \
     return a.isTensor(1) ? a.ret(fn(a.t(0), a.t(1))) : a.ret(fn(a.t(0), a.scalar(1))); \
   }, 2}
#define UNARY(name, fn) {name, [](A& a) -> V { return a.ret(fn(a.t(0))); }, 1}

V fromBytes(A& a) {
  // (bytes: TypedArray | Buffer, dtype, shape, device?) -> a copy of the bytes as a tensor.
  Napi::Value v = a.raw(0);
  if (!v.IsTypedArray()) throw ArgError("argument 0: expected a typed array");
  auto ta = v.As<Napi::TypedArray>();
  auto ab = ta.ArrayBuffer();
  const uint8_t* src = static_cast<const uint8_t*>(ab.Data()) + ta.ByteOffset();
  at::Tensor t = at::empty(a.ints(2), at::TensorOptions().dtype(a.dtype(1)));
  if (static_cast<size_t>(t.nbytes()) != ta.ByteLength())
    throw ArgError("fromBytes: " + std::to_string(ta.ByteLength()) + " bytes given, the shape and dtype need " +
                   std::to_string(t.nbytes()));
  if (t.nbytes()) std::memcpy(t.data_ptr(), src, t.nbytes());
  if (a.has(3)) t = t.to(a.device(3));
  return a.ret(t);
}

V fromFile(A& a) {
  // (path, byteOffset, dtype, shape) -> the bytes at that offset as a tensor. Reads straight into
  // tensor memory, so files (and tensors) over 2 GiB need no JS buffer.
  std::string path = a.s(0);
  at::Tensor t = at::empty(a.ints(3), at::TensorOptions().dtype(a.dtype(2)));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  in.seekg(static_cast<std::streamoff>(a.f(1)));
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  if (static_cast<size_t>(in.gcount()) != t.nbytes())
    throw std::runtime_error(path + ": file ended early (wanted " + std::to_string(t.nbytes()) + " bytes at offset " +
                             std::to_string(static_cast<int64_t>(a.f(1))) + ")");
  return a.ret(t);
}

V toBytes(A& a) {
  // A contiguous CPU copy of the tensor's bytes, as a Node Buffer.
  at::Tensor t = a.t(0).detach().to(at::kCPU).contiguous();
  auto buf = Napi::Buffer<uint8_t>::Copy(a.env(), static_cast<const uint8_t*>(t.data_ptr()), t.nbytes());
  return buf;
}

V shape(A& a) {
  const at::Tensor& t = a.t(0);
  auto arr = Napi::Array::New(a.env(), t.dim());
  for (int64_t k = 0; k < t.dim(); k++)
    arr.Set(static_cast<uint32_t>(k), Napi::Number::New(a.env(), static_cast<double>(t.size(k))));
  return arr;
}

V backward(A& a) {
  // (loss, grad?, retainGraph?)
  c10::optional<at::Tensor> g = a.optT(1);
  bool retain = a.has(2) && a.b(2);
  a.t(0).backward(g ? *g : at::Tensor(), retain);
  return a.none();
}

V lstm(A& a) {
  // (input, [h0, c0], params, hasBiases, numLayers, dropout, train, bidirectional, batchFirst)
  auto r = at::lstm(a.t(0), a.tensors(1), a.tensors(2), a.b(3), a.i64(4), a.f(5), a.b(6), a.b(7), a.b(8));
  return a.ret(std::vector<at::Tensor>{std::get<0>(r), std::get<1>(r), std::get<2>(r)});
}

V index(A& a) {
  // (self, [index tensor | undefined per leading dim]) = self[i0, i1, ...] with advanced indexing.
  auto arr = a.raw(1).As<Napi::Array>();
  c10::List<c10::optional<at::Tensor>> idx;
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    if (v.IsUndefined() || v.IsNull()) idx.push_back(c10::nullopt);
    else idx.push_back(a.tensorOf(v, "index[" + std::to_string(k) + "]"));
  }
  return a.ret(at::index(a.t(0), idx));
}

V maxDim(A& a) {
  auto r = at::max(a.t(0), a.i64(1), a.has(2) && a.b(2));
  return a.ret(std::vector<at::Tensor>{std::get<0>(r), std::get<1>(r)});
}

V minDim(A& a) {
  auto r = at::min(a.t(0), a.i64(1), a.has(2) && a.b(2));
  return a.ret(std::vector<at::Tensor>{std::get<0>(r), std::get<1>(r)});
}

V sortOp(A& a) {
  auto r = at::sort(a.t(0), a.i64(1), a.b(2));
  return a.ret(std::vector<at::Tensor>{std::get<0>(r), std::get<1>(r)});
}

// OpenBLAS's own report of its kernels ("Haswell", "SkylakeX", "Prescott" ...) and build, looked up in
// whichever loaded library exports it: libtorch links it as libblas.so.3 (Debian) or libopenblas.so.
struct OpenBlas {
  std::string corename, config;
};
int findOpenBlas(dl_phdr_info* info, size_t, void* data) {
  if (!info->dlpi_name || !*info->dlpi_name) return 0;
  void* h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);  // already loaded: no new load
  if (!h) return 0;
  auto core = reinterpret_cast<char* (*)()>(dlsym(h, "openblas_get_corename"));
  auto config = reinterpret_cast<char* (*)()>(dlsym(h, "openblas_get_config"));
  if (core) {
    auto* out = static_cast<OpenBlas*>(data);
    out->corename = core();
    if (config) out->config = config();
  }
  dlclose(h);
  return core ? 1 : 0;
}

V buildInfo(A& a) {
  auto o = Napi::Object::New(a.env());
  o.Set("torchVersion", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                            std::to_string(TORCH_VERSION_PATCH));
  o.Set("cuda", at::hasCUDA());
  o.Set("cudaDevices", static_cast<double>(at::getNumGPUs()));
  o.Set("parallel", at::get_parallel_info());
  OpenBlas blas;
  dl_iterate_phdr(findOpenBlas, &blas);
  o.Set("blasCorename", blas.corename);  // "" when the BLAS is not OpenBLAS
  o.Set("blasConfig", blas.config);
  o.Set("mkldnn", at::hasMKLDNN());
  o.Set("config", at::show_config());
  return o;
}

}  // namespace

const OpEntry kOps[] = {
    // --- creation and data ---
    {"fromBytes", fromBytes, 4},
    {"fromFile", fromFile, 4},
    {"toBytes", toBytes, 1},
    {"item", [](A& a) -> V { return a.retNumber(a.t(0).item().toDouble()); }, 1},
    {"zeros", [](A& a) -> V { return a.ret(at::zeros(a.ints(0), a.options(1, 2))); }, 3},
    {"ones", [](A& a) -> V { return a.ret(at::ones(a.ints(0), a.options(1, 2))); }, 3},
    {"empty", [](A& a) -> V { return a.ret(at::empty(a.ints(0), a.options(1, 2))); }, 3},
    {"full", [](A& a) -> V { return a.ret(at::full(a.ints(0), a.scalar(1), a.options(2, 3))); }, 4},
    {"arange", [](A& a) -> V { return a.ret(at::arange(a.scalar(0), a.scalar(1), a.scalar(2), a.options(3, 4))); }, 5},
    {"randn", [](A& a) -> V { return a.ret(at::randn(a.ints(0), a.options(1, 2))); }, 3},
    {"rand", [](A& a) -> V { return a.ret(at::rand(a.ints(0), a.options(1, 2))); }, 3},
    {"randint", [](A& a) -> V {
       return a.ret(at::randint(a.i64(0), a.i64(1), a.ints(2), a.options(3, 4).dtype(at::kLong)));
     }, 5},
    {"randperm", [](A& a) -> V { return a.ret(at::randperm(a.i64(0), a.options(1, 2).dtype(at::kLong))); }, 3},
    {"manualSeed", [](A& a) -> V { at::manual_seed(static_cast<uint64_t>(a.i64(0))); return a.none(); }, 1},

    // --- what a tensor is ---
    {"shape", shape, 1},
    {"dtype", [](A& a) -> V { return a.retString(dtypeName(a.t(0).scalar_type())); }, 1},
    {"device", [](A& a) -> V { return a.retString(a.t(0).device().str()); }, 1},
    {"requiresGrad", [](A& a) -> V { return a.retBool(a.t(0).requires_grad()); }, 1},
    {"isLeaf", [](A& a) -> V { return a.retBool(a.t(0).is_leaf()); }, 1},
    {"free", [](A& a) -> V { freeHandle(a.env(), a.raw(0)); return a.none(); }, 1},
    {"isFreed", [](A& a) -> V { return a.retBool(!isLive(a.env(), a.raw(0))); }, 1},
    {"reportToGc", [](A& a) -> V { reportToGc(a.env(), a.raw(0)); return a.none(); }, 1},

    // --- conversion ---
    {"to", [](A& a) -> V {
       at::Tensor t = a.t(0);
       if (a.has(1)) t = t.to(a.dtype(1));
       if (a.has(2)) t = t.to(a.device(2));
       return a.ret(t);
     }, 3},
    {"contiguous", [](A& a) -> V {
       // (t, memoryFormat?: 'channels_last'): NHWC strides for convolutions that run faster on them
       if (!a.has(1)) return a.ret(a.t(0).contiguous());
       if (a.s(1) != "channels_last") throw ArgError("memory format must be 'channels_last', not '" + a.s(1) + "'");
       return a.ret(a.t(0).contiguous(at::MemoryFormat::ChannelsLast));
     }, 2},
    UNARY("clone", [](const at::Tensor& t) { return t.clone(); }),
    UNARY("detach", [](const at::Tensor& t) { return t.detach(); }),

    // --- autograd ---
    {"setRequiresGrad", [](A& a) -> V { a.t(0).requires_grad_(a.b(1)); return a.none(); }, 2},
    {"backward", backward, 3},
    {"grad", [](A& a) -> V { const at::Tensor& g = a.t(0).grad(); return g.defined() ? a.ret(g) : a.none(); }, 1},
    {"setGrad", [](A& a) -> V { a.t(0).mutable_grad() = a.has(1) ? a.t(1) : at::Tensor(); return a.none(); }, 2},
    {"gradEnabled", [](A& a) -> V { return a.retBool(at::GradMode::is_enabled()); }, 0},
    {"setGradEnabled", [](A& a) -> V { at::GradMode::set_enabled(a.b(0)); return a.none(); }, 1},

    // --- in place (optimizers, initialisation, loading) ---
    {"copy_", [](A& a) -> V { a.t(0).copy_(a.t(1)); return a.none(); }, 2},
    {"zero_", [](A& a) -> V { a.t(0).zero_(); return a.none(); }, 1},
    {"silu_", [](A& a) -> V { at::Tensor t = a.t(0); at::silu_(t); return a.none(); }, 1},
    {"clamp_", [](A& a) -> V {
       a.t(0).clamp_(a.has(1) ? c10::optional<at::Scalar>(a.scalar(1)) : c10::nullopt,
                     a.has(2) ? c10::optional<at::Scalar>(a.scalar(2)) : c10::nullopt);
       return a.none();
     }, 3},
    {"fill_", [](A& a) -> V { a.t(0).fill_(a.scalar(1)); return a.none(); }, 2},
    {"mul_", [](A& a) -> V { a.isTensor(1) ? a.t(0).mul_(a.t(1)) : a.t(0).mul_(a.scalar(1)); return a.none(); }, 2},
    {"div_", [](A& a) -> V { a.isTensor(1) ? a.t(0).div_(a.t(1)) : a.t(0).div_(a.scalar(1)); return a.none(); }, 2},
    {"add_", [](A& a) -> V {
       at::Scalar alpha = a.has(2) ? a.scalar(2) : at::Scalar(1);
       a.isTensor(1) ? a.t(0).add_(a.t(1), alpha) : a.t(0).add_(a.scalar(1), alpha);
       return a.none();
     }, 3},
    {"addcmul_", [](A& a) -> V { a.t(0).addcmul_(a.t(1), a.t(2), a.scalar(3)); return a.none(); }, 4},
    {"addcdiv_", [](A& a) -> V { a.t(0).addcdiv_(a.t(1), a.t(2), a.scalar(3)); return a.none(); }, 4},
    {"normal_", [](A& a) -> V { a.t(0).normal_(a.f(1), a.f(2)); return a.none(); }, 3},
    {"uniform_", [](A& a) -> V { a.t(0).uniform_(a.f(1), a.f(2)); return a.none(); }, 3},
    {"maximum_", [](A& a) -> V { at::Tensor out = a.t(0); at::maximum_out(out, out, a.t(1)); return a.none(); }, 2},

    // --- shape ---
    {"reshape", [](A& a) -> V { return a.ret(a.t(0).reshape(a.ints(1))); }, 2},
    {"view", [](A& a) -> V { return a.ret(a.t(0).view(a.ints(1))); }, 2},
    {"permute", [](A& a) -> V { return a.ret(a.t(0).permute(a.ints(1))); }, 2},
    {"transpose", [](A& a) -> V { return a.ret(a.t(0).transpose(a.i64(1), a.i64(2))); }, 3},
    {"cat", [](A& a) -> V { return a.ret(at::cat(a.tensors(0), a.i64(1))); }, 2},
    {"stack", [](A& a) -> V { return a.ret(at::stack(a.tensors(0), a.i64(1))); }, 2},
    {"split", [](A& a) -> V {
       return a.raw(1).IsNumber() ? a.ret(a.t(0).split(a.i64(1), a.i64(2)))
                                  : a.ret(a.t(0).split_with_sizes(a.ints(1), a.i64(2)));
     }, 3},
    {"chunk", [](A& a) -> V { return a.ret(a.t(0).chunk(a.i64(1), a.i64(2))); }, 3},
    {"indexSelect", [](A& a) -> V { return a.ret(a.t(0).index_select(a.i64(1), a.t(2))); }, 3},
    {"gather", [](A& a) -> V { return a.ret(a.t(0).gather(a.i64(1), a.t(2))); }, 3},
    {"index", index, 2},
    {"narrow", [](A& a) -> V { return a.ret(a.t(0).narrow(a.i64(1), a.i64(2), a.i64(3))); }, 4},
    {"select", [](A& a) -> V { return a.ret(a.t(0).select(a.i64(1), a.i64(2))); }, 3},
    {"slice", [](A& a) -> V { return a.ret(a.t(0).slice(a.i64(1), a.i64(2), a.i64(3), a.i64(4))); }, 5},
    {"expand", [](A& a) -> V { return a.ret(a.t(0).expand(a.ints(1))); }, 2},
    {"squeeze", [](A& a) -> V { return a.ret(a.has(1) ? a.t(0).squeeze(a.i64(1)) : a.t(0).squeeze()); }, 2},
    {"unsqueeze", [](A& a) -> V { return a.ret(a.t(0).unsqueeze(a.i64(1))); }, 2},
    {"flatten", [](A& a) -> V { return a.ret(a.t(0).flatten(a.i64(1), a.i64(2))); }, 3},
    {"flip", [](A& a) -> V { return a.ret(a.t(0).flip(a.ints(1))); }, 2},
    {"repeat", [](A& a) -> V { return a.ret(a.t(0).repeat(a.ints(1))); }, 2},
    {"tril", [](A& a) -> V { return a.ret(a.t(0).tril(a.i64(1))); }, 2},
    {"triu", [](A& a) -> V { return a.ret(a.t(0).triu(a.i64(1))); }, 2},
    {"embedding", [](A& a) -> V { return a.ret(at::embedding(a.t(0), a.t(1))); }, 2},
    {"oneHot", [](A& a) -> V { return a.ret(at::one_hot(a.t(0), a.i64(1))); }, 2},

    // --- elementwise ---
    BINARY("add", at::add),
    BINARY("sub", at::sub),
    BINARY("mul", at::mul),
    BINARY("div", at::div),
    BINARY("pow", at::pow),
    BINARY("eq", at::eq),
    BINARY("ne", at::ne),
    BINARY("lt", at::lt),
    BINARY("le", at::le),
    BINARY("gt", at::gt),
    BINARY("ge", at::ge),
    {"rsub", [](A& a) -> V { return a.ret(at::rsub(a.t(0), a.scalar(1))); }, 2},
    {"maximum", [](A& a) -> V { return a.ret(at::maximum(a.t(0), a.t(1))); }, 2},
    {"minimum", [](A& a) -> V { return a.ret(at::minimum(a.t(0), a.t(1))); }, 2},
    UNARY("neg", at::neg),
    UNARY("exp", at::exp),
    UNARY("log", at::log),
    UNARY("sqrt", at::sqrt),
    UNARY("rsqrt", at::rsqrt),
    UNARY("abs", at::abs),
    UNARY("sin", at::sin),
    UNARY("cos", at::cos),
    UNARY("tanh", at::tanh),
    UNARY("sigmoid", at::sigmoid),
    UNARY("relu", at::relu),
    UNARY("silu", at::silu),
    UNARY("floor", at::floor),
    UNARY("isfinite", at::isfinite),
    UNARY("isnan", at::isnan),
    UNARY("logicalNot", at::logical_not),
    {"logicalAnd", [](A& a) -> V { return a.ret(at::logical_and(a.t(0), a.t(1))); }, 2},
    {"logicalOr", [](A& a) -> V { return a.ret(at::logical_or(a.t(0), a.t(1))); }, 2},
    {"gelu", [](A& a) -> V { return a.ret(at::gelu(a.t(0), a.has(1) ? a.s(1) : std::string("none"))); }, 2},
    {"clamp", [](A& a) -> V {
       c10::optional<at::Scalar> lo, hi;
       if (a.has(1)) lo = a.scalar(1);
       if (a.has(2)) hi = a.scalar(2);
       return a.ret(at::clamp(a.t(0), lo, hi));
     }, 3},
    {"where", [](A& a) -> V {
       if (a.isTensor(1) && a.isTensor(2)) return a.ret(at::where(a.t(0), a.t(1), a.t(2)));
       if (a.isTensor(1)) return a.ret(at::where(a.t(0), a.t(1), a.scalar(2)));
       if (a.isTensor(2)) return a.ret(at::where(a.t(0), a.scalar(1), a.t(2)));
       return a.ret(at::where(a.t(0), a.scalar(1), a.scalar(2)));
     }, 3},
    {"maskedFill", [](A& a) -> V { return a.ret(a.t(0).masked_fill(a.t(1), a.scalar(2))); }, 3},

    // --- linear algebra ---
    {"matmul", [](A& a) -> V { return a.ret(at::matmul(a.t(0), a.t(1))); }, 2},
    {"bmm", [](A& a) -> V { return a.ret(at::bmm(a.t(0), a.t(1))); }, 2},
    {"linear", [](A& a) -> V { return a.ret(at::linear(a.t(0), a.t(1), a.optT(2))); }, 3},
    {"einsum", [](A& a) -> V { return a.ret(at::einsum(a.s(0), a.tensors(1))); }, 2},

    // --- reductions ---
    {"sum", [](A& a) -> V { return a.ret(a.has(1) ? at::sum(a.t(0), a.ints(1), a.b(2)) : at::sum(a.t(0))); }, 3},
    {"mean", [](A& a) -> V { return a.ret(a.has(1) ? at::mean(a.t(0), a.ints(1), a.b(2)) : at::mean(a.t(0))); }, 3},
    {"var", [](A& a) -> V { return a.ret(at::var(a.t(0), a.ints(1), a.b(2), a.b(3))); }, 4},
    {"norm", [](A& a) -> V { return a.ret(at::norm(a.t(0), a.scalar(1), a.ints(2), a.b(3))); }, 4},
    {"logsumexp", [](A& a) -> V { return a.ret(at::logsumexp(a.t(0), a.ints(1), a.b(2))); }, 3},
    UNARY("max", at::max),
    UNARY("min", at::min),
    {"maxDim", maxDim, 3},
    {"minDim", minDim, 3},
    {"argmax", [](A& a) -> V {
       return a.ret(a.has(1) ? at::argmax(a.t(0), a.i64(1), a.b(2)) : at::argmax(a.t(0)));
     }, 3},
    {"argmin", [](A& a) -> V {
       return a.ret(a.has(1) ? at::argmin(a.t(0), a.i64(1), a.b(2)) : at::argmin(a.t(0)));
     }, 3},
    {"sort", sortOp, 3},
    {"cumsum", [](A& a) -> V { return a.ret(at::cumsum(a.t(0), a.i64(1))); }, 2},
    UNARY("all", at::all),
    UNARY("any", at::any),

    // --- neural network functions ---
    {"softmax", [](A& a) -> V { return a.ret(at::softmax(a.t(0), a.i64(1))); }, 2},
    {"logSoftmax", [](A& a) -> V { return a.ret(at::log_softmax(a.t(0), a.i64(1))); }, 2},
    {"layerNorm", [](A& a) -> V { return a.ret(at::layer_norm(a.t(0), a.ints(1), a.optT(2), a.optT(3), a.f(4))); }, 5},
    {"conv1d", [](A& a) -> V {
       return a.ret(at::conv1d(a.t(0), a.t(1), a.optT(2), a.ints(3), a.ints(4), a.ints(5), a.i64(6)));
     }, 7},
    {"pad", [](A& a) -> V { return a.ret(at::constant_pad_nd(a.t(0), a.ints(1), a.scalar(2))); }, 3},
    {"conv2d", [](A& a) -> V {
       return a.ret(at::conv2d(a.t(0), a.t(1), a.optT(2), a.ints(3), a.ints(4), a.ints(5), a.i64(6)));
     }, 7},
    {"lstm", lstm, 9},
    {"dropout", [](A& a) -> V { return a.ret(at::dropout(a.t(0), a.f(1), a.b(2))); }, 3},
    {"crossEntropy", [](A& a) -> V {
       // (logits, target, weight?, reduction, ignoreIndex, labelSmoothing)
       return a.ret(at::cross_entropy_loss(a.t(0), a.t(1), a.optT(2), reduction(a.s(3)), a.i64(4), a.f(5)));
     }, 6},
    {"mseLoss", [](A& a) -> V { return a.ret(at::mse_loss(a.t(0), a.t(1), reduction(a.s(2)))); }, 3},
    {"cosineSimilarity", [](A& a) -> V { return a.ret(at::cosine_similarity(a.t(0), a.t(1), a.i64(2), a.f(3))); }, 4},

    // --- runtime ---
    {"setNumThreads", [](A& a) -> V { at::set_num_threads(static_cast<int>(a.i64(0))); return a.none(); }, 1},
    {"getNumThreads", [](A& a) -> V { return a.retNumber(at::get_num_threads()); }, 0},
    {"buildInfo", buildInfo, 0},
    {"liveHandles", [](A& a) -> V { return a.retNumber(static_cast<double>(liveHandles())); }, 0},
};

const size_t kNumOps = sizeof(kOps) / sizeof(kOps[0]);

}  // namespace ous
