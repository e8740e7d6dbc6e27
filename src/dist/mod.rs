//! Data-parallel runs on PyTorch's own distributed runtime (c10d): a `TCPStore` rendezvous
//! and `ProcessGroupGloo` (CPU) or `ProcessGroupNCCL` (CUDA), reached through the small C++
//! bridge in `csrc/c10d_bridge.cpp`. destila makes no collective of its own. Gradients are
//! averaged by c10d's own `Reducer` (DDP's engine, [`Reducer`]), given exactly the
//! parameters the active losses reach (`find_unused_parameters` off); the start-of-run
//! weight broadcast packs tensors into flat buckets; loss counts and logged sums are small
//! all-reduces of f64 values.
//!
//! Each rank also beats a heartbeat counter in the store, so that when a collective fails
//! (a peer died, or did not answer within the timeout) the survivors can say which rank
//! was lost.

mod ffi;
pub mod launch;

use std::ffi::c_char;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tch::{Device, Kind, Tensor};

pub use launch::Launch;

use crate::error::{Error, Result};

/// Gradient buckets for the all-reduce (DDP's defaults: 1 MB first, then 25 MB), and the
/// broadcast buckets.
pub const BUCKET_BYTES: usize = 25 << 20;
pub const FIRST_BUCKET_BYTES: usize = 1 << 20;
const HEARTBEAT: Duration = Duration::from_millis(200);

/// Whether this process is rank 0 of its group, or alone.
pub fn is_main(group: &Option<Arc<Group>>) -> bool {
    group.as_ref().is_none_or(|g| g.is_main())
}

/// Waits for every rank (nothing when alone).
pub fn barrier(group: &Option<Arc<Group>>) -> Result<()> {
    match group {
        Some(g) => g.barrier(),
        None => Ok(()),
    }
}

/// Joins the data-parallel run the launcher's variables describe (torchrun's `RANK`,
/// `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`); None when there is none.
/// `device` is the recipe's (`auto`, `cpu`, `cuda`, ...).
pub fn join(device: &str) -> Result<Option<Arc<Group>>> {
    let Some(launch) = Launch::from_env()? else {
        return Ok(None);
    };
    let device = rank_device(crate::device::parse(device)?, Some(launch.local_rank));
    Ok(Some(Arc::new(Group::init(&launch, device)?)))
}

/// A rank's device: `cuda:LOCAL_RANK` when the run is on CUDA (the one mapping from rank
/// to device).
pub fn rank_device(device: Device, local_rank: Option<usize>) -> Device {
    match (device, local_rank) {
        (Device::Cuda(_), Some(r)) => Device::Cuda(r),
        (d, _) => d,
    }
}

/// The device of this process in `group` (its local rank's GPU on CUDA).
pub fn group_device(device: Device, group: &Option<Arc<Group>>) -> Device {
    rank_device(device, group.as_ref().map(|g| g.local_rank()))
}

/// Whether this build carries ProcessGroupNCCL (it needs the CUDA headers at build time).
pub fn has_nccl() -> bool {
    // SAFETY: a constant function of the bridge.
    unsafe { ffi::dst_has_nccl() != 0 }
}

/// A TCPStore client (or client and server).
struct Store(*mut ffi::Store);
// SAFETY: c10d's TCPStore serialises its own socket use; each thread here owns its client.
unsafe impl Send for Store {}

impl Store {
    fn connect(l: &Launch, server: bool, timeout: Duration) -> std::result::Result<Store, String> {
        let host = ffi::cstring(&l.master_addr);
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: valid C strings; the bridge returns null and sets err on failure.
        let s = unsafe {
            ffi::dst_store_new(
                host.as_ptr(),
                l.master_port as i32,
                server as i32,
                l.world as i32,
                timeout.as_millis() as i64,
                &mut err,
            )
        };
        if s.is_null() {
            return Err(ffi::take_error(err));
        }
        Ok(Store(s))
    }

    fn add(&self, key: &str, delta: i64) -> std::result::Result<i64, String> {
        let k = ffi::cstring(key);
        let (mut v, mut err) = (0i64, ptr::null_mut());
        // SAFETY: self.0 is a live store.
        let rc = unsafe { ffi::dst_store_add(self.0, k.as_ptr(), delta, &mut v, &mut err) };
        if rc != 0 {
            return Err(ffi::take_error(err));
        }
        Ok(v)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by dst_store_new, freed once.
        unsafe { ffi::dst_store_free(self.0) }
    }
}

/// This process's membership of a data-parallel run.
pub struct Group {
    launch: Launch,
    device: Device,
    backend: &'static str,
    prefix: String,
    store: Option<Store>,
    pg: *mut ffi::Group,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
    /// Set once a collective failed: the group is then left to the process's exit rather
    /// than torn down (its worker threads may still hold the failed work).
    failed: AtomicBool,
}

// SAFETY: the raw handles are c10d objects whose collectives may be issued from any thread
// (c10d queues them internally); destila issues them from one thread at a time.
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Group(rank {} of {}, {})",
            self.launch.rank, self.launch.world, self.backend
        )
    }
}

impl Group {
    /// Joins the run `launch` describes, on `device` (NCCL on CUDA, Gloo on the CPU).
    pub fn init(launch: &Launch, device: Device) -> Result<Group> {
        let l = launch.clone();
        let backend = match device {
            Device::Cuda(_) => "nccl",
            _ => "gloo",
        };
        if backend == "nccl" && !has_nccl() {
            return Err(Error::Distributed(
                "this build has no NCCL (the CUDA headers were missing when it was compiled); run on the CPU or rebuild after scripts/setup.sh".into(),
            ));
        }
        let prefix = match l.agent_store {
            Some(attempt) => format!("/worker/attempt_{attempt}/destila/"),
            None => "destila/".into(),
        };
        let server = l.agent_store.is_none() && l.rank == 0;
        let store = Store::connect(&l, server, l.timeout).map_err(|e| {
            Error::Distributed(format!(
                "rank {}: no rendezvous with the store at {}:{} within {:?}: {e}",
                l.rank, l.master_addr, l.master_port, l.timeout
            ))
        })?;
        let mut err = ptr::null_mut();
        let (p, b) = (ffi::cstring(&format!("{prefix}pg")), ffi::cstring(backend));
        // SAFETY: store.0 is live; strings valid.
        let pg = unsafe {
            ffi::dst_group_new(
                store.0,
                p.as_ptr(),
                b.as_ptr(),
                l.rank as i32,
                l.world as i32,
                l.timeout.as_millis() as i64,
                &mut err,
            )
        };
        if pg.is_null() {
            return Err(Error::Distributed(format!(
                "rank {}: could not form the {backend} process group of {} ranks: {}",
                l.rank,
                l.world,
                ffi::take_error(err)
            )));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (l, stop, key) = (l.clone(), stop.clone(), format!("{prefix}hb/{}", l.rank));
            std::thread::Builder::new()
                .name("destila-heartbeat".into())
                .spawn(move || {
                    let Ok(s) = Store::connect(&l, false, Duration::from_secs(10)) else {
                        return;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        if s.add(&key, 1).is_err() {
                            return;
                        }
                        std::thread::sleep(HEARTBEAT);
                    }
                })
                .map_err(|e| Error::Distributed(format!("heartbeat thread: {e}")))?
        };
        let g = Group {
            launch: l,
            device,
            backend,
            prefix,
            store: Some(store),
            pg,
            stop,
            heartbeat: Some(heartbeat),
            failed: AtomicBool::new(false),
        };
        g.barrier()?;
        Ok(g)
    }

    pub fn rank(&self) -> usize {
        self.launch.rank
    }

    pub fn world(&self) -> usize {
        self.launch.world
    }

    pub fn local_rank(&self) -> usize {
        self.launch.local_rank
    }

    pub fn is_main(&self) -> bool {
        self.launch.rank == 0
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Waits on a started work, or explains its failure.
    fn wait(&self, what: &str, work: *mut ffi::Work, err: *mut c_char) -> Result<()> {
        if work.is_null() {
            return Err(self.lost(what, ffi::take_error(err)));
        }
        let mut err = ptr::null_mut();
        // SAFETY: work came from the bridge and is consumed here.
        if unsafe { ffi::dst_work_wait(work, &mut err) } != 0 {
            return Err(self.lost(what, ffi::take_error(err)));
        }
        Ok(())
    }

    fn start_sum(&self, t: &mut Tensor) -> (*mut ffi::Work, *mut c_char) {
        let mut err = ptr::null_mut();
        // SAFETY: pg is live; t is a valid tensor handle for the call.
        let w = unsafe { ffi::dst_allreduce_start(self.pg, t.as_mut_ptr(), &mut err) };
        (w, err)
    }

    /// Sums `t` over the ranks, in place.
    pub fn sum_(&self, t: &Tensor) -> Result<()> {
        let mut t = t.shallow_clone();
        let (w, e) = self.start_sum(&mut t);
        self.wait("all-reduce", w, e)
    }

    /// Sums a few numbers over the ranks (in f64, on the group's device).
    pub fn sum_f64(&self, v: &mut [f64]) -> Result<()> {
        let t = Tensor::from_slice(v).to_device(self.device);
        self.sum_(&t)?;
        let back = Vec::<f64>::try_from(t.to_device(Device::Cpu))
            .map_err(|e| Error::Distributed(format!("reading a sum back: {e}")))?;
        v.copy_from_slice(&back);
        Ok(())
    }

    /// Makes every rank's `tensors` equal to rank `root`'s.
    pub fn broadcast_(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        for bucket in buckets(tensors, BUCKET_BYTES) {
            let flats: Vec<Tensor> = bucket
                .iter()
                .map(|t| t.detach().to_kind(Kind::Float).view([-1]))
                .collect();
            let mut flat = Tensor::cat(&flats, 0);
            let mut err = ptr::null_mut();
            // SAFETY: pg is live; flat is a valid tensor.
            let w = unsafe {
                ffi::dst_broadcast_start(self.pg, flat.as_mut_ptr(), root as i32, &mut err)
            };
            self.wait("broadcast", w, err)?;
            unpack(&bucket, &flat);
        }
        Ok(())
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        let t = Tensor::ones([1], (Kind::Float, self.device));
        self.sum_(&t)
    }

    /// The error for a failed collective: which ranks stopped beating their heartbeat.
    pub fn lost(&self, what: &str, cause: String) -> Error {
        self.failed.store(true, Ordering::Relaxed);
        let l = &self.launch;
        let me = l.rank;
        let probe = Store::connect(l, false, Duration::from_secs(3));
        let verdict = match probe {
            Err(_) if l.agent_store.is_none() => format!(
                "lost rank 0: the rendezvous store it hosts at {}:{} is gone",
                l.master_addr, l.master_port
            ),
            Err(_) => format!(
                "the launcher's store at {}:{} is gone",
                l.master_addr, l.master_port
            ),
            Ok(s) => {
                let read = |s: &Store| -> Vec<Option<i64>> {
                    (0..l.world)
                        .map(|r| s.add(&format!("{}hb/{r}", self.prefix), 0).ok())
                        .collect()
                };
                let before = read(&s);
                std::thread::sleep(HEARTBEAT * 8);
                let after = read(&s);
                let lost: Vec<String> = (0..l.world)
                    .filter(|&r| r != me && (after[r].is_none() || after[r] == before[r]))
                    .map(|r| r.to_string())
                    .collect();
                if lost.is_empty() {
                    "every other rank is still alive".into()
                } else {
                    format!(
                        "lost rank {} (no heartbeat for {:.1} s)",
                        lost.join(", rank "),
                        (HEARTBEAT * 8).as_secs_f64()
                    )
                }
            }
        };
        Error::Distributed(format!(
            "rank {me} of {}: {what} failed: {verdict}; stopping (checkpoints already written are intact). c10d: {}",
            l.world,
            cause.lines().next().unwrap_or("")
        ))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        if self.failed.load(Ordering::Relaxed) {
            // Leave the process group and store to the exit: tearing them down could wait on
            // work that a lost peer will never finish.
            std::mem::forget(self.store.take());
            return;
        }
        // SAFETY: created by dst_group_new, freed once, before its store.
        unsafe { ffi::dst_group_free(self.pg) };
        self.store.take();
    }
}

/// DistributedDataParallel's gradient reducer (c10d::Reducer): registered on the trainable
/// parameters, it averages their gradients over the ranks during the backward pass of the
/// micro-batch it was told to expect, bucket by bucket as gradients become ready.
pub struct Reducer {
    group: Arc<Group>,
    ptr: *mut ffi::Reducer,
}

impl Reducer {
    /// `params`: the trainable parameters, in an order every rank shares.
    pub fn new(group: Arc<Group>, params: &[Tensor]) -> Result<Reducer> {
        let mut handles: Vec<Tensor> = params.iter().map(|p| p.shallow_clone()).collect();
        let mut ptrs: Vec<*mut torch_sys::C_tensor> =
            handles.iter_mut().map(|t| t.as_mut_ptr()).collect();
        let mut err = ptr::null_mut();
        // SAFETY: the tensor handles outlive the call; the bridge copies the tensors.
        let r = unsafe {
            ffi::dst_reducer_new(
                group.pg,
                ptrs.as_mut_ptr(),
                ptrs.len(),
                BUCKET_BYTES as i64,
                FIRST_BUCKET_BYTES as i64,
                &mut err,
            )
        };
        if r.is_null() {
            return Err(Error::Distributed(format!(
                "the gradient reducer: {}",
                ffi::take_error(err)
            )));
        }
        Ok(Reducer { group, ptr: r })
    }

    /// Before the forward pass of the micro-batch whose backward is to be averaged.
    pub fn begin(&self) -> Result<()> {
        let mut err = ptr::null_mut();
        // SAFETY: ptr is live.
        if unsafe { ffi::dst_reducer_begin(self.ptr, &mut err) } != 0 {
            return Err(self
                .group
                .lost("gradient bucket rebuild", ffi::take_error(err)));
        }
        Ok(())
    }

    /// After that forward pass: `loss` is what its backward starts from.
    pub fn expect(&self, loss: &Tensor) -> Result<()> {
        let mut l = loss.shallow_clone();
        let mut err = ptr::null_mut();
        // SAFETY: ptr is live; l is a valid tensor for the call.
        if unsafe { ffi::dst_reducer_expect(self.ptr, l.as_mut_ptr(), &mut err) } != 0 {
            return Err(Error::Distributed(format!(
                "the gradient reducer: {}",
                ffi::take_error(err)
            )));
        }
        Ok(())
    }

    /// The backward pass of the expected loss, during which the gradients are averaged; a
    /// failed all-reduce comes back as the error naming the lost rank.
    pub fn backward(&self, loss: &Tensor) -> Result<()> {
        loss.f_backward()
            .map_err(|e| self.group.lost("gradient all-reduce", e.to_string()))
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        if !self.group.failed.load(Ordering::Relaxed) {
            // SAFETY: created by dst_reducer_new, freed once.
            unsafe { ffi::dst_reducer_free(self.ptr) }
        }
    }
}

/// Consecutive runs of `tensors` of at most `bytes` of fp32 each (a larger tensor alone).
fn buckets(tensors: &[Tensor], bytes: usize) -> Vec<Vec<Tensor>> {
    let mut out: Vec<Vec<Tensor>> = Vec::new();
    let mut size = 0usize;
    for t in tensors {
        let b = t.numel() * 4;
        if out.is_empty() || size + b > bytes {
            out.push(Vec::new());
            size = 0;
        }
        out.last_mut().expect("pushed").push(t.shallow_clone());
        size += b;
    }
    out
}

/// Copies the slices of `flat` back into the tensors it was packed from.
fn unpack(bucket: &[Tensor], flat: &Tensor) {
    tch::no_grad(|| {
        let mut at = 0i64;
        for t in bucket {
            let n = t.numel() as i64;
            let mut t = t.shallow_clone();
            t.copy_(&flat.narrow(0, at, n).view_as(&t));
            at += n;
        }
    });
}
