// A C interface to PyTorch's c10d (TCPStore, ProcessGroupGloo, ProcessGroupNCCL) for
// destila's Rust side (src/dist/). Compiled by build.rs against the headers of the very
// libtorch the binary links; every call catches C++ exceptions and returns them as text.
//
// Tensors arrive as `at::Tensor*`, which is what tch's C_tensor handles are.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DESTILA_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

template <typename F>
int guarded(char** err, F&& f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    *err = dup(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = dup(e.what());
  } catch (...) {
    *err = dup("unknown C++ exception");
  }
  return -1;
}

}  // namespace

struct dst_store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct dst_group {
  c10::intrusive_ptr<c10d::Backend> backend;
};

struct dst_work {
  c10::intrusive_ptr<c10d::Work> work;
};

extern "C" {

void dst_free_string(char* s) { std::free(s); }

int dst_has_nccl() {
#ifdef DESTILA_NCCL
  return 1;
#else
  return 0;
#endif
}

// A TCPStore client (and, with is_server, the server too), connected or failed within
// timeout_ms.
dst_store* dst_store_new(const char* host, int port, int is_server, int world,
                         int64_t timeout_ms, char** err) {
  dst_store* out = nullptr;
  guarded(err, [&] {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(port);
    o.isServer = is_server != 0;
    o.numWorkers = world;
    o.waitWorkers = false;
    o.timeout = std::chrono::milliseconds(timeout_ms);
    out = new dst_store{c10::make_intrusive<c10d::TCPStore>(host, o)};
  });
  return out;
}

void dst_store_free(dst_store* s) { delete s; }

int dst_store_add(dst_store* s, const char* key, int64_t delta, int64_t* value,
                  char** err) {
  return guarded(err, [&] { *value = s->store->add(key, delta); });
}

int dst_store_set(dst_store* s, const char* key, const uint8_t* data, size_t len,
                  char** err) {
  return guarded(err, [&] {
    s->store->set(key, std::vector<uint8_t>(data, data + len));
  });
}

// Waits (up to the store's timeout) for `key`; the value is malloc'd into *data.
int dst_store_get(dst_store* s, const char* key, uint8_t** data, size_t* len,
                  char** err) {
  return guarded(err, [&] {
    auto v = s->store->get(key);
    *len = v.size();
    *data = static_cast<uint8_t*>(std::malloc(v.size() + 1));
    std::memcpy(*data, v.data(), v.size());
  });
}

void dst_free_bytes(uint8_t* p) { std::free(p); }

// A process group over `store` (its keys under `prefix`): backend "gloo" or "nccl".
dst_group* dst_group_new(dst_store* s, const char* prefix, const char* backend, int rank,
                         int world, int64_t timeout_ms, char** err) {
  dst_group* out = nullptr;
  guarded(err, [&] {
    auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, s->store);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    std::string b(backend);
    if (b == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create_default(timeout);
      out = new dst_group{c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, o)};
    } else if (b == "nccl") {
#ifdef DESTILA_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      out = new dst_group{c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, o)};
#else
      throw std::runtime_error("this build of destila has no NCCL (compiled without CUDA headers)");
#endif
    } else {
      throw std::runtime_error("unknown backend " + b);
    }
  });
  return out;
}

void dst_group_free(dst_group* g) { delete g; }

// Starts a sum all-reduce of one tensor, in place; wait with dst_work_wait.
dst_work* dst_allreduce_start(dst_group* g, at::Tensor* t, char** err) {
  dst_work* out = nullptr;
  guarded(err, [&] {
    std::vector<at::Tensor> v{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    out = new dst_work{g->backend->allreduce(v, o)};
  });
  return out;
}

// Starts a broadcast of one tensor from `root`, in place.
dst_work* dst_broadcast_start(dst_group* g, at::Tensor* t, int root, char** err) {
  dst_work* out = nullptr;
  guarded(err, [&] {
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    out = new dst_work{g->backend->broadcast(v, o)};
  });
  return out;
}

// Waits for `w` and frees it, whether it succeeded or not.
int dst_work_wait(dst_work* w, char** err) {
  int rc = guarded(err, [&] { w->work->wait(); });
  delete w;
  return rc;
}

}  // extern "C"
