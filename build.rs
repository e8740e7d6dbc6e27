// Link-time fixes for libtorch (see ARCHITECTURE.md, "Linking libtorch"):
// * an rpath to libtorch's lib folder, so the binary runs without LD_LIBRARY_PATH;
// * libtorch_cuda.so kept as NEEDED even though no symbol of ours references it directly
//   (the linker's --as-needed would drop it and CUDA would then never be available).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
