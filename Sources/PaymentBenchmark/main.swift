// Placeholder until the payment benchmark lands.
print("payment-bench")
