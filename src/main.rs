fn main() -> std::process::ExitCode {
    diffc::cli::main()
}
