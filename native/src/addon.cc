// Handles, argument reading, the error-translating wrapper and module init.
#include "addon.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace ous {
namespace {

// Marks our External handles so that a foreign External passed by mistake is an error, not a crash.
const napi_type_tag kTensorTag = {0x6f75735f746f7263ULL, 0x68616e646c653031ULL};

void finalizeHolder(Napi::Env env, Holder* h) {
  if (h->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -h->reportedBytes);
  delete h;
}

// Every call goes through here: one place turns a libtorch or argument error into a JS error
// carrying libtorch's own message (never a crash, never a C++ backtrace).
Napi::Value call(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<OpFn>(info.Data());
  Napi::Env env = info.Env();
  try {
    Args args(info);
    return fn(args);
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

Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  auto* h = new Holder{std::move(t), 0};
  if (h->tensor.defined() && h->tensor.device().is_cpu()) {
    h->reportedBytes = static_cast<int64_t>(h->tensor.nbytes());
    if (h->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, h->reportedBytes);
  }
  auto ext = Napi::External<Holder>::New(env, h, finalizeHolder);
  napi_type_tag_object(env, ext, &kTensorTag);
  return ext;
}

void freeHandle(Napi::Env env, Holder* h) {
  h->tensor = at::Tensor();
  if (h->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -h->reportedBytes);
  h->reportedBytes = 0;
}

bool Args::has(size_t i) const {
  return i < info_.Length() && !info_[i].IsUndefined() && !info_[i].IsNull();
}

bool Args::isTensor(size_t i) const {
  if (!has(i) || !info_[i].IsExternal()) return false;
  bool ok = false;
  napi_check_object_type_tag(env_, info_[i], &kTensorTag, &ok);
  return ok;
}

Holder* Args::holder(size_t i) const {
  if (!isTensor(i)) throw ArgError("argument " + std::to_string(i) + ": expected a tensor handle");
  return info_[i].As<Napi::External<Holder>>().Data();
}

const at::Tensor& Args::t(size_t i) const {
  Holder* h = holder(i);
  if (!h->tensor.defined()) throw ArgError("argument " + std::to_string(i) + ": the tensor was disposed");
  return h->tensor;
}

c10::optional<at::Tensor> Args::optT(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return t(i);
}

std::vector<at::Tensor> Args::tensors(size_t i) const {
  if (!has(i) || !info_[i].IsArray()) throw ArgError("argument " + std::to_string(i) + ": expected an array of tensors");
  auto arr = info_[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    bool ok = false;
    if (v.IsExternal()) napi_check_object_type_tag(env_, v, &kTensorTag, &ok);
    if (!ok) throw ArgError("argument " + std::to_string(i) + "[" + std::to_string(k) + "]: expected a tensor handle");
    const at::Tensor& tk = v.As<Napi::External<Holder>>().Data()->tensor;
    if (!tk.defined()) throw ArgError("argument " + std::to_string(i) + "[" + std::to_string(k) + "]: the tensor was disposed");
    out.push_back(tk);
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
  if (!has(i) || !info_[i].IsArray()) throw ArgError("argument " + std::to_string(i) + ": expected an array of integers");
  auto arr = info_[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber()) throw ArgError("argument " + std::to_string(i) + "[" + std::to_string(k) + "]: expected an integer");
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
  for (size_t k = 0; k < ous::kNumOps; k++) {
    const auto& op = ous::kOps[k];
    exports.Set(op.name, Napi::Function::New(env, ous::call, op.name, reinterpret_cast<void*>(op.fn)));
  }
  return exports;
}

}  // namespace

NODE_API_MODULE(ous_torch, init)
