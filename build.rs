// Build steps around libtorch (see ARCHITECTURE.md, "Linking libtorch" and "c10d bridge"):
// * an rpath to libtorch's lib folder, so the binary runs without LD_LIBRARY_PATH;
// * libtorch_cuda.so kept as NEEDED even though no symbol of ours references it directly
//   (the linker's --as-needed would drop it and CUDA would then never be available);
// * csrc/c10d_bridge.cpp compiled against the headers of that same libtorch, with gloo's
//   headers (and, when the CUDA headers are there, NCCL's) fetched by scripts/setup.sh;
// * csrc/qlinear.cpp (libtorch's dynamic int8 linear kernels) in the same library.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=DESTILA_HEADERS");
    println!("cargo:rerun-if-changed=csrc/c10d_bridge.cpp");
    println!("cargo:rerun-if-changed=csrc/qlinear.cpp");
    println!("cargo:rerun-if-changed=csrc/bridge_util.h");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = PathBuf::from(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let cuda = lib.join("libtorch_cuda.so").exists();
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    bridge(&lib, cuda);
}

fn bridge(lib: &Path, cuda: bool) {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let headers = std::env::var("DESTILA_HEADERS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".cache/headers"));
    let gloo = headers.join("gloo/include");
    if !gloo.join("gloo/algorithm.h").is_file() {
        panic!(
            "gloo's headers are not in {}: run scripts/setup.sh (or `make setup`), which fetches them, \
             or point DESTILA_HEADERS at a folder holding gloo/include",
            gloo.display()
        );
    }
    let torch_include = lib.parent().expect("lib has a parent").join("include");
    let mut b = cc::Build::new();
    b.cpp(true)
        .file(root.join("csrc/c10d_bridge.cpp"))
        .file(root.join("csrc/qlinear.cpp"))
        .flag("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .define("USE_C10D_GLOO", None)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .include(&gloo)
        .include(&torch_include)
        .include(torch_include.join("torch/csrc/api/include"))
        .warnings(false);
    // NCCL: the wheel's nvidia packages (beside torch/) hold the runtime and NCCL headers;
    // setup.sh adds crt/ and nv/ into .cache/headers/cuda.
    let nvidia = lib.join("../../nvidia");
    let cuda_inc = nvidia.join("cu13/include");
    let nccl_inc = nvidia.join("nccl/include");
    let extra = headers.join("cuda/include");
    if cuda
        && cuda_inc.join("cuda_runtime.h").is_file()
        && nccl_inc.join("nccl.h").is_file()
        && extra.join("crt/host_config.h").is_file()
    {
        b.define("DESTILA_NCCL", None)
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None)
            .include(&cuda_inc)
            .include(&extra)
            .include(&nccl_inc);
        println!("cargo:rustc-cfg=destila_nccl");
    } else {
        println!("cargo:warning=building without NCCL: CUDA/NCCL headers not found");
    }
    println!("cargo:rustc-check-cfg=cfg(destila_nccl)");
    b.compile("destila_c10d");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
