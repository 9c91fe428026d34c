fn main() -> std::process::ExitCode {
    otpgate::cli::main()
}
