fn main() -> std::process::ExitCode {
    civctl::cli::main()
}
