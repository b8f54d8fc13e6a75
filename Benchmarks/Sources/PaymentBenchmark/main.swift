// The entry point; PaymentBench.swift says what is measured, `payment-bench --help` lists the options.

/// Parses the options and runs the benchmark. A function of its own because in top-level code
/// `await PaymentBench.main()` resolves to the synchronous `ParsableCommand.main()`, which cannot run an
/// `AsyncParsableCommand`; inside an `async` function the asynchronous overload wins.
func runPaymentBench() async {
    await PaymentBench.main()
}

await runPaymentBench()
