internal import CRabbitMQ
import Foundation

/// Copies out of rabbitmq-c's byte buffers, which die at the next `amqp_maybe_release_buffers`.
enum RabbitMQCBytes {
    /// The bytes as a string (invalid UTF-8 is repaired, as names and reply texts are meant to be text).
    static func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let start = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: start, count: bytes.len), as: UTF8.self)
    }

    /// The bytes as `Data`.
    static func data(_ bytes: amqp_bytes_t) -> Data {
        guard bytes.len > 0, let start = bytes.bytes else { return Data() }
        return Data(bytes: start, count: bytes.len)
    }

    /// The method id split into the class and method ids errors report.
    static func method(_ id: amqp_method_number_t) -> AMQPMethod {
        AMQPMethod(classID: UInt16(truncatingIfNeeded: id >> 16), methodID: UInt16(truncatingIfNeeded: id & 0xFFFF))
    }
}
