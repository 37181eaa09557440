#include "loop/event_loop.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <utility>

#include "common/log.hpp"

namespace idemq::detail {
namespace {

// The one place libuv status codes become exceptions.
void check_uv(int status, const char* what) {
    if (status < 0) throw Error(fmt::format("libuv {} failed: {}", what, uv_strerror(status)));
}

// Exceptions never cross libuv's C frames: a throwing callback is a bug, so
// it is logged and the process stops instead of unwinding through C.
template <class Fn>
void call_noexcept(const Fn& fn, const char* where) noexcept {
    try {
        fn();
    } catch (const std::exception& e) {
        log().critical("unexpected exception in {} callback: {}", where, e.what());
        std::terminate();
    }
}

}  // namespace

EventLoop::EventLoop() {
    check_uv(uv_loop_init(&loop_), "uv_loop_init");
    const int status = uv_async_init(&loop_, wakeup_.get(),
                                     [](uv_async_t* async) { static_cast<EventLoop*>(async->data)->drain_posted(); });
    if (status < 0) {
        uv_loop_close(&loop_);
        check_uv(status, "uv_async_init");
    }
    wakeup_.mark_initialized();
    wakeup_.get()->data = this;
}

EventLoop::~EventLoop() {
    if (close() != 0) log().error("the event loop closed with handles still open");
}

int EventLoop::close() noexcept {
    if (closed_) return 0;
    closed_ = true;
    {
        std::lock_guard lock(mutex_);
        accepting_ = false;
        posted_.clear();
    }
    wakeup_.close();
    // Closing callbacks run only inside the loop; the loop may be closed once
    // every handle has finished closing.
    uv_run(&loop_, UV_RUN_DEFAULT);
    return uv_loop_close(&loop_);
}

void EventLoop::post(std::function<void()> fn) {
    {
        std::lock_guard lock(mutex_);
        if (!accepting_) return;
        posted_.push_back(std::move(fn));
    }
    uv_async_send(wakeup_.get());
}

void EventLoop::drain_posted() noexcept {
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard lock(mutex_);
        batch.swap(posted_);
    }
    for (auto& fn : batch) call_noexcept(fn, "posted");
}

void EventLoop::run() { uv_run(&loop_, UV_RUN_DEFAULT); }

void EventLoop::stop() noexcept { uv_stop(&loop_); }

Timer::Timer(EventLoop& loop) {
    check_uv(uv_timer_init(loop.raw(), handle_.get()), "uv_timer_init");
    handle_.mark_initialized();
    handle_.get()->data = this;
}

void Timer::start(std::chrono::milliseconds delay, std::chrono::milliseconds repeat, std::function<void()> fn) {
    fn_ = std::move(fn);
    check_uv(uv_timer_start(
                 handle_.get(),
                 [](uv_timer_t* timer) {
                     auto* self = static_cast<Timer*>(timer->data);
                     call_noexcept(self->fn_, "timer");
                 },
                 static_cast<std::uint64_t>(delay.count()), static_cast<std::uint64_t>(repeat.count())),
             "uv_timer_start");
}

void Timer::stop() noexcept { uv_timer_stop(handle_.get()); }

SignalWatcher::SignalWatcher(EventLoop& loop, std::vector<int> signals, std::function<void(int)> fn)
    : fn_(std::move(fn)) {
    for (const int signum : signals) {
        auto handle = std::make_unique<UvHandle<uv_signal_t>>();
        check_uv(uv_signal_init(loop.raw(), handle->get()), "uv_signal_init");
        handle->mark_initialized();
        handle->get()->data = this;
        check_uv(uv_signal_start(
                     handle->get(),
                     [](uv_signal_t* signal, int number) {
                         auto* self = static_cast<SignalWatcher*>(signal->data);
                         call_noexcept([&] { self->fn_(number); }, "signal");
                     },
                     signum),
                 "uv_signal_start");
        handles_.push_back(std::move(handle));
    }
}

SocketWatcher::SocketWatcher(EventLoop& loop, int fd, std::function<void()> on_readable) : fn_(std::move(on_readable)) {
    check_uv(uv_poll_init_socket(loop.raw(), handle_.get(), fd), "uv_poll_init_socket");
    handle_.mark_initialized();
    handle_.get()->data = this;
    check_uv(uv_poll_start(handle_.get(), UV_READABLE | UV_DISCONNECT,
                           [](uv_poll_t* poll, int /*status*/, int /*events*/) {
                               // An error status also means "look at the socket":
                               // the read that follows reports what went wrong.
                               auto* self = static_cast<SocketWatcher*>(poll->data);
                               call_noexcept(self->fn_, "socket");
                           }),
             "uv_poll_start");
}

}  // namespace idemq::detail
