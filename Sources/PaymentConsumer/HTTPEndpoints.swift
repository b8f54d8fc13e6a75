import Foundation
import NIOHTTP1
import PaymentService
import Prometheus

/// What the consumer answers over HTTP: the Prometheus metrics and the two health probes. Only the answers live
/// here; ``HTTPServerService`` carries them over the network.
struct HTTPEndpoints: Sendable {
    /// One answer, before it is encoded as HTTP.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
        /// The methods a path allows, for the `Allow` header of a 405.
        var allow: String?
    }

    /// The version of the Prometheus text format that `emit` writes.
    static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"
    private static let allowed = "GET, HEAD"

    /// The registry behind the bootstrapped swift-metrics backend: every counter of the process is in it.
    let registry: PrometheusCollectorRegistry
    let service: PaymentConsumerService

    /// The answer to `method` on `uri`. HEAD gets GET's answer, whose body the server leaves out.
    func respond(to method: HTTPMethod, uri: String) -> Response {
        // A query string changes nothing: probes and scrapers sometimes add one.
        let path = uri.prefix { $0 != "?" }
        let route: Route? =
            switch path {
            case "/metrics": .metrics
            case "/health/live": .live
            case "/health/ready": .ready
            default: nil
            }
        guard let route else {
            return Self.text(.notFound, "not found: the endpoints are /metrics, /health/live and /health/ready")
        }
        guard method == .GET || method == .HEAD else {
            var response = Self.text(.methodNotAllowed, "method not allowed: use GET or HEAD")
            response.allow = Self.allowed
            return response
        }
        switch route {
        case .metrics: return Response(status: .ok, contentType: Self.metricsContentType, body: registry.emitToBuffer())
        case .live: return live()
        case .ready: return ready()
        }
    }

    private enum Route {
        case metrics, live, ready
    }

    /// 200 while the service runs; 503 once it has stopped, in the moment before the process exits.
    private func live() -> Response {
        service.isLive
            ? Self.json(.ok, Probe(status: "live", reason: "the service runs"))
            : Self.json(.serviceUnavailable, Probe(status: "not live", reason: "the service has stopped"))
    }

    /// 200 once caught up and consuming, 503 otherwise, with the service's reason.
    private func ready() -> Response {
        let readiness = service.readiness
        return Self.json(
            readiness.isReady ? .ok : .serviceUnavailable,
            Probe(status: readiness.isReady ? "ready" : "not ready", reason: readiness.reason))
    }

    /// The body of a probe's answer: `{"reason":"…","status":"…"}`.
    private struct Probe: Encodable {
        let status: String
        let reason: String
    }

    private static func json(_ status: HTTPResponseStatus, _ probe: Probe) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Two strings always encode; the fallback only keeps the signature free of `throws`.
        let body = (try? encoder.encode(probe)).map { Array($0) + [0x0A] } ?? Array("{}\n".utf8)
        return Response(status: status, contentType: "application/json", body: body)
    }

    private static func text(_ status: HTTPResponseStatus, _ message: String) -> Response {
        Response(status: status, contentType: "text/plain; charset=utf-8", body: Array("\(message)\n".utf8))
    }
}
