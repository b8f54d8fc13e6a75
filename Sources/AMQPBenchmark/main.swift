// Placeholder until the benchmark lands.
print("amqp-bench")
