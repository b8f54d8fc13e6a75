import ArgumentParser
import Logging
import PaymentCommandLine
import XCTest

/// Where `consumer` and `producer` export traces: `--otlp-endpoint` over the OpenTelemetry variables, the OTLP/HTTP
/// path rules, and the usage error (exit code 64) for a URL that cannot name a collector.
final class TracingOptionsTests: XCTestCase {
    private func endpoint(_ arguments: [String], _ environment: [String: String]) throws -> OTLPTracesEndpoint? {
        // `parse` validates with the test process's own environment, which sets no endpoint; `environment` is the
        // one under test.
        try TracingOptions.parse(arguments).tracesEndpoint(environment: environment)
    }

    func testNothingIsExportedWhenNoEndpointIsSet() throws {
        XCTAssertNil(try endpoint([], [:]))
        // An empty variable counts as unset.
        XCTAssertNil(try endpoint([], [OTLPTracesEndpoint.sharedVariable: "", OTLPTracesEndpoint.tracesVariable: " "]))
        let options = try TracingOptions.parse([])
        XCTAssertNil(options.otlpEndpoint)
        XCTAssertNil(
            try options.bootstrapTracing(serviceName: "payment-tests", logger: Logger(label: "t"), environment: [:]))
    }

    func testTheBaseURLGetsTheTracesPath() throws {
        let cases = [
            "http://otel-collector:4318": "http://otel-collector:4318/v1/traces",
            "http://otel-collector:4318/": "http://otel-collector:4318/v1/traces",
            "https://collector.example:443/otlp": "https://collector.example:443/otlp/v1/traces",
            "HTTP://127.0.0.1:4318": "HTTP://127.0.0.1:4318/v1/traces",
            // Already the full URL: not doubled.
            "http://otel-collector:4318/v1/traces": "http://otel-collector:4318/v1/traces",
        ]
        for (given, expected) in cases {
            XCTAssertEqual(try endpoint(["--otlp-endpoint", given], [:])?.url, expected, given)
            XCTAssertEqual(try endpoint([], [OTLPTracesEndpoint.sharedVariable: given])?.url, expected, given)
        }
    }

    func testTheFlagWinsOverTheVariablesAndTheTracesVariableOverTheSharedOne() throws {
        let both = [
            OTLPTracesEndpoint.sharedVariable: "http://shared:4318",
            OTLPTracesEndpoint.tracesVariable: "http://traces-only:4318/custom",
        ]
        let flagged = try XCTUnwrap(endpoint(["--otlp-endpoint", "http://flag:4318"], both))
        XCTAssertEqual(flagged.url, "http://flag:4318/v1/traces")
        XCTAssertEqual(flagged.source, "--otlp-endpoint")
        // The signal's own variable is the full URL, used as it is.
        let traces = try XCTUnwrap(endpoint([], both))
        XCTAssertEqual(traces.url, "http://traces-only:4318/custom")
        XCTAssertEqual(traces.source, OTLPTracesEndpoint.tracesVariable)
        XCTAssertEqual(
            try endpoint([], [OTLPTracesEndpoint.tracesVariable: "http://traces-only:4318"])?.url,
            "http://traces-only:4318/")
        let shared = try XCTUnwrap(endpoint([], [OTLPTracesEndpoint.sharedVariable: "http://shared:4318"]))
        XCTAssertEqual(shared.source, OTLPTracesEndpoint.sharedVariable)
        // A valid flag even hides an invalid variable, which is then never read.
        XCTAssertNotNil(try endpoint(["--otlp-endpoint", "http://flag"], [OTLPTracesEndpoint.sharedVariable: "::"]))
    }

    func testAURLThatCannotNameACollectorIsAUsageError() throws {
        let cases = [
            "otel-collector:4318": "has no http:// or https:// scheme",
            "grpc://otel-collector:4317": "has no http:// or https:// scheme",
            "http://": "has no host",
            "http://collector:4318?x=1": "has a query or a fragment",
            "http://collector:4318#traces": "has a query or a fragment",
            "http://user:secret@collector:4318": "credentials do not belong in the URL",
            "http://collector:0": "outside 1-65535",
            "http:// collector": "is not a URL",
        ]
        for (given, reason) in cases {
            XCTAssertThrowsError(try TracingOptions.parse(["--otlp-endpoint", given]), given) { error in
                let message = TracingOptions.message(for: error)
                XCTAssertTrue(message.hasPrefix("invalid --otlp-endpoint: "), message)
                XCTAssertTrue(message.contains(reason), "\(given): \(message)")
                XCTAssertFalse(message.contains("secret"), message)
                XCTAssertEqual(TracingOptions.exitCode(for: error), .validationFailure, given)
                XCTAssertEqual(TracingOptions.exitCode(for: error).rawValue, 64, given)
            }
        }
        XCTAssertThrowsError(try endpoint([], [OTLPTracesEndpoint.sharedVariable: "localhost:4318"])) { error in
            XCTAssertTrue("\(error)".contains("invalid OTEL_EXPORTER_OTLP_ENDPOINT: "), "\(error)")
        }
    }
}
