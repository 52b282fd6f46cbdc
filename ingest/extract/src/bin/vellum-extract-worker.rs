//! The extraction worker: see `vellum_extract::isolate`.

fn main() -> std::process::ExitCode {
    vellum_extract::isolate::worker_main()
}
