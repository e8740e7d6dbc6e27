// A C interface to PyTorch's c10d (TCPStore, ProcessGroupGloo, ProcessGroupNCCL, and the
// Reducer behind DistributedDataParallel) for
// destila's Rust side (src/dist/). Compiled by build.rs against the headers of the very
// libtorch the binary links; every call catches C++ exceptions and returns them as text.
//
// Tensors arrive as `at::Tensor*`, which is what tch's C_tensor handles are.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef DESTILA_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "bridge_util.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

using dst::dup;
using dst::guarded;

struct dst_store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct dst_group {
  c10::intrusive_ptr<c10d::Backend> backend;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
};

struct dst_reducer {
  std::unique_ptr<c10d::Reducer> reducer;
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

// A process group over `store` (its keys under `prefix`): backend "gloo" or "nccl".
dst_group* dst_group_new(dst_store* s, const char* prefix, const char* backend, int rank,
                         int world, int64_t timeout_ms, char** err) {
  dst_group* out = nullptr;
  guarded(err, [&] {
    auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, s->store);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    std::string b(backend);
    auto pg = c10::make_intrusive<c10d::ProcessGroup>(store, rank, world);
    if (b == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create_default(timeout);
      c10::intrusive_ptr<c10d::Backend> be =
          c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, o);
      pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, be);
      pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
      out = new dst_group{be, pg};
    } else if (b == "nccl") {
#ifdef DESTILA_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      c10::intrusive_ptr<c10d::Backend> be =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, o);
      pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, be);
      pg->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
      out = new dst_group{be, pg};
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

// DistributedDataParallel's gradient reducer over `params` (trainable, in a fixed order
// shared by every rank): autograd hooks hand each gradient to its bucket as the backward
// pass produces it, and a bucket's all-reduce (an average over the ranks) starts as soon
// as the bucket is full, overlapping the rest of the backward pass. Buckets as DDP makes
// them: a small first one, then `bucket_bytes`, rebuilt in gradient order after the first
// step. Every parameter must receive a gradient in every step (find_unused_parameters off;
// the caller leaves out what its losses never reach).
dst_reducer* dst_reducer_new(dst_group* g, at::Tensor** params, size_t n, int64_t bucket_bytes,
                             int64_t first_bucket_bytes, char** err) {
  dst_reducer* out = nullptr;
  guarded(err, [&] {
    std::vector<at::Tensor> ps;
    ps.reserve(n);
    for (size_t i = 0; i < n; ++i) ps.push_back(*params[i]);
    std::vector<bool> sparse(n, false);
    std::vector<size_t> limits{static_cast<size_t>(first_bucket_bytes),
                               static_cast<size_t>(bucket_bytes)};
    auto [buckets, per_bucket] = c10d::compute_bucket_assignment_by_size(ps, limits, sparse);
    std::reverse(buckets.begin(), buckets.end());
    out = new dst_reducer{std::make_unique<c10d::Reducer>(
        ps, buckets, g->pg, sparse, bucket_bytes, /*find_unused_parameters=*/false,
        /*gradient_as_bucket_view=*/false, std::unordered_map<size_t, std::string>{},
        first_bucket_bytes, /*skip_all_reduce_unused_params=*/false,
        /*use_python_reducer=*/false, std::vector<int64_t>{})};
  });
  return out;
}

// Before the forward pass whose backward is to be reduced (every rank at the same point):
// rebuilds the buckets once, in the order gradients arrived in the first step.
int dst_reducer_begin(dst_reducer* r, char** err) {
  return guarded(err, [&] {
    r->reducer->rebuild_buckets();
    r->reducer->prepare_for_forward();
  });
}

// After that forward pass, before its backward: `loss` is what backward starts from.
int dst_reducer_expect(dst_reducer* r, at::Tensor* loss, char** err) {
  return guarded(err, [&] { r->reducer->prepare_for_backward({*loss}); });
  // (With find_unused_parameters off the reducer does not read `loss`; it is passed as DDP
  // passes its outputs.)
}

void dst_reducer_free(dst_reducer* r) { delete r; }

}  // extern "C"
