import CoreMetrics
import Prometheus

/// The gateway's metrics, emitted through swift-metrics into a Prometheus registry.
/// Handles are cached per label set; touched on the loop thread only.
public final class GatewayMetrics {
    public let registry: PrometheusCollectorRegistry
    private var webhookCounters: [String: CoreMetrics.Counter] = [:]
    private var durationTimers: [TimerKey: CoreMetrics.Timer] = [:]
    private var lastTimer: (key: TimerKey, timer: CoreMetrics.Timer)?

    private struct TimerKey: Hashable {
        let method: String
        let route: String
        let status: Int
    }

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// `gatewayd_webhooks_total{outcome}`: accepted, duplicate, ignored, or the error code.
    public func webhook(outcome: String) {
        if let counter = webhookCounters[outcome] {
            counter.increment()
            return
        }
        let counter = CoreMetrics.Counter(label: "gatewayd_webhooks_total", dimensions: [("outcome", outcome)])
        webhookCounters[outcome] = counter
        counter.increment()
    }

    /// `gatewayd_http_request_duration_seconds{method,route,status}`.
    public func request(method: String, route: String, status: Int, nanoseconds: UInt64) {
        let key = TimerKey(method: method, route: route, status: status)
        // Answers come in runs of the same kind (webhook 202s): the last one is kept at hand.
        if let last = lastTimer, last.key == key {
            last.timer.recordNanoseconds(Int64(nanoseconds))
            return
        }
        let timer: CoreMetrics.Timer
        defer { lastTimer = (key, timer) }
        if let cached = durationTimers[key] {
            timer = cached
        } else {
            timer = CoreMetrics.Timer(
                label: "gatewayd_http_request_duration_seconds",
                dimensions: [("method", method), ("route", route), ("status", String(status))])
            durationTimers[key] = timer
        }
        timer.recordNanoseconds(Int64(nanoseconds))
    }

    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}
