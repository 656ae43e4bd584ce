private import CLibEvent
import Foundation

/// One libevent event_base, driven by one thread.
///
/// Only the loop thread touches libevent objects. Other threads hand work to it
/// through `execute`, a mailbox drained by one `event_active`-triggered event (the
/// pattern of Tor's workqueue and memcached's notify pipe).
public final class EventLoop: @unchecked Sendable {
    let base: OpaquePointer
    private let lock = NSLock()
    // Guarded by `lock`.
    private var mailbox: [LoopTask] = []
    private var mailboxEvent: OpaquePointer!
    private var signalEvents: [OpaquePointer] = []
    private var signalHandlers: [Int32: () -> Void] = [:]
    private var timers: [ObjectIdentifier: TimerBox] = [:]
    private var loopThread: pthread_t?

    public init() {
        // Must precede event_base_new, or event_active from other threads is unsafe.
        EventLoop.enableThreads
        // Changelist: the enable/disable pairs evhttp makes on a connection within one
        // loop iteration become one epoll_ctl instead of several.
        let config = event_config_new()
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue))
        // Timers on CLOCK_MONOTONIC, not libevent's default CLOCK_MONOTONIC_COARSE (a tick
        // of several ms on this kernel): a coarse clock fires a timer up to a tick early
        // by a precise one (the sandbox's 700 ms delay fault answered after 699.8 ms).
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_PRECISE_TIMER.rawValue))
        guard let base = event_base_new_with_config(config) else { fatalError("event_base_new failed") }
        event_config_free(config)
        self.base = base
        let context = Unmanaged.passUnretained(self).toOpaque()
        mailboxEvent = event_new(
            base, -1, 0,
            { _, _, context in
                Unmanaged<EventLoop>.fromOpaque(context!).takeUnretainedValue().drainMailbox()
            }, context)
    }

    deinit {
        for event in signalEvents { event_free(event) }
        event_free(mailboxEvent)
        event_base_free(base)
    }

    private static let enableThreads: Void = {
        evthread_use_pthreads()
        signal(SIGPIPE, SIG_IGN)
    }()

    public static var libeventVersion: String { String(cString: event_get_version()) }

    /// Runs `task` on the loop thread soon. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        lock.lock()
        mailbox.append(LoopTask(run: task))
        let wake = mailbox.count == 1
        lock.unlock()
        if wake { event_active(mailboxEvent, 0, 0) }
    }

    /// Runs `task` on the loop thread; the closure may capture loop-confined objects.
    /// Callers promise those objects are only touched there.
    public func executeUnchecked(_ task: @escaping () -> Void) {
        let box = UncheckedSendable(task)
        execute { box.value() }
    }

    private func drainMailbox() {
        lock.lock()
        let tasks = mailbox
        mailbox.removeAll(keepingCapacity: true)
        lock.unlock()
        for task in tasks { task.run() }
    }

    public var inLoopThread: Bool {
        guard let loopThread else { return false }
        return pthread_equal(loopThread, pthread_self()) != 0
    }

    /// Runs the loop on the calling thread until `stop` or `stop(after:)`.
    public func run() {
        loopThread = pthread_self()
        event_base_dispatch(base)
    }

    /// Exits the loop after `seconds`, letting pending output flush meanwhile.
    public func stop(after seconds: Double = 0) {
        var tv = Self.interval(seconds)
        event_base_loopexit(base, &tv)
    }

    /// Calls `handler` on the loop thread whenever `signal` arrives.
    public func onSignal(_ signo: Int32, _ handler: @escaping () -> Void) {
        signalHandlers[signo] = handler
        let context = Unmanaged.passUnretained(self).toOpaque()
        guard
            let event = gw_evsignal_new(
                base, signo,
                { signo, _, context in
                    let loop = Unmanaged<EventLoop>.fromOpaque(context!).takeUnretainedValue()
                    loop.signalHandlers[Int32(signo)]?()
                }, context)
        else { fatalError("evsignal_new failed") }
        event_add(event, nil)
        signalEvents.append(event)
    }

    /// Calls `handler` on the loop thread after `seconds`, then every `seconds` if `repeating`.
    @discardableResult
    public func schedule(after seconds: Double, repeating: Bool = false, _ handler: @escaping () -> Void)
        -> LoopTimer
    {
        let box = TimerBox(handler: handler, loop: self)
        let flags = Int16(repeating ? EV_PERSIST : 0)
        box.event = event_new(
            base, -1, flags,
            { _, _, context in
                let box = Unmanaged<TimerBox>.fromOpaque(context!).takeUnretainedValue()
                box.fire()
            }, Unmanaged.passUnretained(box).toOpaque())
        box.repeating = repeating
        var tv = Self.interval(seconds)
        // libevent times a new timer from the time it cached when this loop iteration
        // began; refresh it, or a timer set late in a busy iteration fires that much early.
        event_base_update_cache_time(base)
        event_add(box.event, &tv)
        timers[ObjectIdentifier(box)] = box
        return LoopTimer(box: box)
    }

    /// `seconds` in whole microseconds, rounded (0.7 s is 699,999.99… µs as a Double).
    fileprivate static func interval(_ seconds: Double) -> timeval {
        let micros = Int((seconds * 1_000_000).rounded())
        return timeval(tv_sec: micros / 1_000_000, tv_usec: micros % 1_000_000)
    }

    fileprivate func forget(_ box: TimerBox) {
        timers[ObjectIdentifier(box)] = nil
    }
}

/// A handle to cancel a scheduled timer (loop thread only).
public struct LoopTimer {
    fileprivate let box: TimerBox
    public func cancel() { box.cancel() }
}

fileprivate final class TimerBox {
    var event: OpaquePointer?
    let handler: () -> Void
    unowned let loop: EventLoop
    var repeating = false

    init(handler: @escaping () -> Void, loop: EventLoop) {
        self.handler = handler
        self.loop = loop
    }

    func fire() {
        handler()
        if !repeating { cancel() }
    }

    func cancel() {
        guard let event else { return }
        event_free(event)
        self.event = nil
        loop.forget(self)
    }
}

struct LoopTask: @unchecked Sendable {
    let run: () -> Void
}

/// Carries a value across threads when the code guarantees the value is only
/// used on one thread at a time (loop-confined objects, handles moved to the
/// thread that owns them).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
