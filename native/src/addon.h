// The thin Node-API layer over libtorch. Everything here is plumbing: a tensor handle, a reader
// for JavaScript arguments, and the one wrapper that turns libtorch exceptions into JS errors.
// The operations themselves are one table in ops.cc; no model logic lives in C++.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>


#include <string>
#include <vector>

namespace ous {

// A JS tensor handle is a BigInt naming a slot: generation << 32 | index. Each slot owns one
// reference to a tensor; freeing the handle (dispose, or the JS FinalizationRegistry when the
// Tensor object is collected) drops that reference at once and bumps the generation, so a stale
// handle is an error, never another tensor. Plain integers, not V8 Externals: an External's
// finalizer only runs when the event loop turns, so a synchronous training loop piled them up.
struct Slot {
  at::Tensor tensor;
  uint32_t generation = 0;
  int64_t reportedBytes = 0;  // what was reported to V8 as external memory (reportToGc)
};

// A user-caused argument error (wrong type, wrong arity): becomes a JS TypeError.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Handles in use (not yet freed), for leak tests and diagnostics.
int64_t liveHandles();

at::ScalarType parseDtype(const std::string& name);
std::string dtypeName(at::ScalarType type);

// Reads the arguments of one native call; each accessor names the argument in its error.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, size_t arity) : info_(info), env_(info.Env()), arity_(arity) {}

  Napi::Env env() const { return env_; }
  size_t size() const { return info_.Length(); }
  // Present and neither undefined nor null.
  bool has(size_t i) const;
  bool isTensor(size_t i) const;

  const at::Tensor& t(size_t i) const;
  // The tensor a JS value names; `what` names the value in the error.
  const at::Tensor& tensorOf(Napi::Value v, const std::string& what) const;
  c10::optional<at::Tensor> optT(size_t i) const;
  std::vector<at::Tensor> tensors(size_t i) const;
  double f(size_t i) const;
  int64_t i64(size_t i) const;
  bool b(size_t i) const;
  std::string s(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;
  at::Scalar scalar(size_t i) const;
  at::ScalarType dtype(size_t i) const;
  at::Device device(size_t i) const;
  // dtype and device from two argument slots, either of which may be absent.
  at::TensorOptions options(size_t dtypeAt, size_t deviceAt) const;
  Napi::Value raw(size_t i) const { return arg(i); }

  // Results: a tensor becomes a new handle; a list becomes an array of handles.
  Napi::Value ret(const at::Tensor& t) const;
  Napi::Value ret(const std::vector<at::Tensor>& ts) const;
  Napi::Value retNumber(double v) const { return Napi::Number::New(env_, v); }
  Napi::Value retBool(bool v) const { return Napi::Boolean::New(env_, v); }
  Napi::Value retString(const std::string& v) const { return Napi::String::New(env_, v); }
  Napi::Value none() const { return env_.Undefined(); }

 private:
  // Argument i; reading past the op's arity (its table row) is a bug in that row, reported as one.
  Napi::Value arg(size_t i) const;
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  size_t arity_;
};

Napi::Value wrapTensor(Napi::Env env, at::Tensor t);
// Releases a handle's tensor; freeing a stale or already freed handle does nothing.
void freeHandle(Napi::Env env, Napi::Value handle);
// Tells V8 the bytes of a CPU tensor that only the garbage collector will free (a JS Tensor
// outside every scope), so that V8 collects sooner when such tensors pile up; released by
// freeHandle. Tensors freed by their scope are not reported: the training step's gigabytes of
// temporaries made V8 run a full collection every ~120 ms, on the core the GEMMs needed.
void reportToGc(Napi::Env env, Napi::Value handle);
// Whether a handle still names a tensor.
bool isLive(Napi::Env env, Napi::Value handle);

using OpFn = Napi::Value (*)(Args&);
// One row of the operation table: the JS name, the function, and its arity (how many arguments it
// reads, optional ones included). The addon exports the names and arities as `opArities`; the
// loader (src/torch/native.ts) checks them against its own table before the first op runs.
struct OpEntry {
  const char* name;
  OpFn fn;
  size_t arity;
};
// The operation table (ops.cc).
extern const OpEntry kOps[];
extern const size_t kNumOps;

}  // namespace ous
