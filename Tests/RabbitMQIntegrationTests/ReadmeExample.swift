// The README's example, compiled and run by ReadmeExampleTests. The lines between the markers must stay identical
// to the README's first Swift block (a test checks it).
// README-EXAMPLE-BEGIN
import RabbitMQ

struct Greeting: Codable, Sendable {
    var text: String
}

func greet(url: String) async throws -> String {
    let connection = try await AMQPConnection.connect(url: url)
    let channel = try await connection.openChannel()
    try await channel.enablePublisherConfirms()

    let greetings = AMQPTypedQueue<Greeting>(name: "readme-greetings", channel: channel)
    try await greetings.declare(durable: false, autoDelete: true)
    try await greetings.publish(Greeting(text: "hello"))  // returns once the broker confirmed it

    var received = ""
    for try await delivery in try await greetings.consume() {
        received = try delivery.message.text
        try await delivery.ack()
        break
    }
    try await connection.close()
    return received
}
// README-EXAMPLE-END
