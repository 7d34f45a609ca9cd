// Handles, argument reading, the error-translating wrapper and module init.
#include "addon.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <deque>

namespace ous {
namespace {

// Slots live in a deque so that references to them stay valid while new ones are added.
std::deque<Slot> gSlots;
std::vector<uint32_t> gFreeSlots;

// The slot a handle names, or null when the value is not a live handle.
Slot* lookup(Napi::Value v, uint32_t* indexOut = nullptr) {
  if (!v.IsBigInt()) return nullptr;
  bool lossless = true;
  uint64_t h = v.As<Napi::BigInt>().Uint64Value(&lossless);
  uint64_t index = h & 0xffffffffULL;
  if (!lossless || index >= gSlots.size()) return nullptr;
  Slot& s = gSlots[index];
  if (s.generation != (h >> 32) || !s.tensor.defined()) return nullptr;
  if (indexOut) *indexOut = static_cast<uint32_t>(index);
  return &s;
}

// Every call goes through here: one place turns a libtorch or argument error into a JS error
// carrying libtorch's own message (never a crash, never a C++ backtrace).
Napi::Value call(const Napi::CallbackInfo& info) {
  const auto& op = *static_cast<const OpEntry*>(info.Data());
  Napi::Env env = info.Env();
  try {
    if (info.Length() > op.arity)
      throw ArgError(std::string(op.name) + " takes at most " + std::to_string(op.arity) + " argument(s), got " +
                     std::to_string(info.Length()));
    Args args(info, op.arity);
    return op.fn(args);
  } catch (const ArgError& e) {
    Napi::TypeError::New(env, e.what()).ThrowAsJavaScriptException();
  } catch (const c10::Error& e) {
    Napi::Error::New(env, e.what_without_backtrace()).ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

}  // namespace

at::ScalarType parseDtype(const std::string& n) {
  if (n == "float32") return at::kFloat;
  if (n == "float64") return at::kDouble;
  if (n == "float16") return at::kHalf;
  if (n == "bfloat16") return at::kBFloat16;
  if (n == "int64") return at::kLong;
  if (n == "int32") return at::kInt;
  if (n == "uint8") return at::kByte;
  if (n == "bool") return at::kBool;
  throw ArgError("unknown dtype '" + n + "' (float32, float64, float16, bfloat16, int64, int32, uint8, bool)");
}

std::string dtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return std::string("unsupported:") + c10::toString(t);
  }
}

int64_t liveHandles() { return static_cast<int64_t>(gSlots.size() - gFreeSlots.size()); }

Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  uint32_t index;
  if (!gFreeSlots.empty()) {
    index = gFreeSlots.back();
    gFreeSlots.pop_back();
  } else {
    index = static_cast<uint32_t>(gSlots.size());
    gSlots.emplace_back();
  }
  Slot& s = gSlots[index];
  s.tensor = std::move(t);
  return Napi::BigInt::New(env, (static_cast<uint64_t>(s.generation) << 32) | index);
}

void freeHandle(Napi::Env env, Napi::Value handle) {
  uint32_t index = 0;
  Slot* s = lookup(handle, &index);
  if (!s) return;
  s->tensor = at::Tensor();
  if (s->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -s->reportedBytes);
  s->reportedBytes = 0;
  s->generation++;
  gFreeSlots.push_back(index);
}

void reportToGc(Napi::Env env, Napi::Value handle) {
  Slot* s = lookup(handle);
  if (!s || s->reportedBytes || !s->tensor.defined() || !s->tensor.device().is_cpu()) return;
  s->reportedBytes = static_cast<int64_t>(s->tensor.nbytes());
  if (s->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, s->reportedBytes);
}

bool isLive(Napi::Env env, Napi::Value handle) { return lookup(handle) != nullptr; }

Napi::Value Args::arg(size_t i) const {
  if (i >= arity_)
    throw std::logic_error("the op reads argument " + std::to_string(i) + ", past the arity in its table row");
  return info_[i];
}

bool Args::has(size_t i) const {
  Napi::Value v = arg(i);  // undefined past the arguments given
  return !v.IsUndefined() && !v.IsNull();
}

bool Args::isTensor(size_t i) const { return has(i) && arg(i).IsBigInt(); }

const at::Tensor& Args::tensorOf(Napi::Value v, const std::string& what) const {
  if (!v.IsBigInt()) throw ArgError(what + ": expected a tensor handle");
  Slot* s = lookup(v);
  if (!s) throw ArgError(what + ": the tensor was disposed");
  return s->tensor;
}

const at::Tensor& Args::t(size_t i) const { return tensorOf(arg(i), "argument " + std::to_string(i)); }

c10::optional<at::Tensor> Args::optT(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return t(i);
}

std::vector<at::Tensor> Args::tensors(size_t i) const {
  if (!has(i) || !info_[i].IsArray())
    throw ArgError("argument " + std::to_string(i) + ": expected an array of tensors");
  auto arr = info_[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    out.push_back(tensorOf(arr.Get(k), "argument " + std::to_string(i) + "[" + std::to_string(k) + "]"));
  }
  return out;
}

double Args::f(size_t i) const {
  if (!has(i) || !info_[i].IsNumber()) throw ArgError("argument " + std::to_string(i) + ": expected a number");
  return info_[i].As<Napi::Number>().DoubleValue();
}

int64_t Args::i64(size_t i) const {
  if (!has(i) || !info_[i].IsNumber()) throw ArgError("argument " + std::to_string(i) + ": expected an integer");
  return info_[i].As<Napi::Number>().Int64Value();
}

bool Args::b(size_t i) const {
  if (!has(i) || !info_[i].IsBoolean()) throw ArgError("argument " + std::to_string(i) + ": expected a boolean");
  return info_[i].As<Napi::Boolean>().Value();
}

std::string Args::s(size_t i) const {
  if (!has(i) || !info_[i].IsString()) throw ArgError("argument " + std::to_string(i) + ": expected a string");
  return info_[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> Args::ints(size_t i) const {
  if (has(i) && info_[i].IsNumber()) return {i64(i)};
  if (!has(i) || !info_[i].IsArray())
    throw ArgError("argument " + std::to_string(i) + ": expected an array of integers");
  auto arr = info_[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber())
      throw ArgError("argument " + std::to_string(i) + "[" + std::to_string(k) + "]: expected an integer");
    out[k] = v.As<Napi::Number>().Int64Value();
  }
  return out;
}

at::Scalar Args::scalar(size_t i) const {
  if (has(i) && info_[i].IsBoolean()) return at::Scalar(b(i));
  return at::Scalar(f(i));
}

at::ScalarType Args::dtype(size_t i) const { return parseDtype(s(i)); }

at::Device Args::device(size_t i) const { return at::Device(s(i)); }

at::TensorOptions Args::options(size_t dtypeAt, size_t deviceAt) const {
  at::TensorOptions o = at::TensorOptions().dtype(has(dtypeAt) ? dtype(dtypeAt) : at::kFloat);
  if (has(deviceAt)) o = o.device(device(deviceAt));
  return o;
}

Napi::Value Args::ret(const at::Tensor& t) const { return wrapTensor(env_, t); }

Napi::Value Args::ret(const std::vector<at::Tensor>& ts) const {
  auto arr = Napi::Array::New(env_, ts.size());
  for (size_t k = 0; k < ts.size(); k++) arr.Set(static_cast<uint32_t>(k), wrapTensor(env_, ts[k]));
  return arr;
}

}  // namespace ous

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  // Keep freed large buffers in the process instead of returning them to the OS: training loops
  // allocate the same big activations every step, and faulting them in again was measured to
  // cost up to 3x (ARCHITECTURE.md). OUS_NO_MALLOPT=1 keeps glibc's defaults.
  if (!std::getenv("OUS_NO_MALLOPT")) {
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  }
  auto arities = Napi::Object::New(env);
  for (size_t k = 0; k < ous::kNumOps; k++) {
    const auto& op = ous::kOps[k];
    exports.Set(op.name, Napi::Function::New(env, ous::call, op.name, const_cast<ous::OpEntry*>(&op)));
    arities.Set(op.name, static_cast<double>(op.arity));
  }
  exports.Set("opArities", arities);
  return exports;
}

}  // namespace

NODE_API_MODULE(ous_torch, init)
