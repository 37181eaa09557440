#pragma once

#include "loop/uv_handle.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace idemq::detail {

class Timer;

// Owns the uv_loop_t of the thread that calls run(). post() is the one way
// other threads reach it: their functions run on the loop thread, in order.
class EventLoop final {
public:
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    [[nodiscard]] uv_loop_t* raw() noexcept { return &loop_; }

    // Thread-safe. After shutdown() the function is dropped: whatever it
    // would have acked stays unacked and returns to the queue.
    void post(std::function<void()> fn);

    // Runs until stop(); callbacks and posted functions run on this thread.
    void run();
    // Loop thread only: makes run() return once the current callback ends.
    void stop() noexcept;
    // Stops accepting posts, lets every closed handle finish closing and
    // closes the loop: 0, or UV_EBUSY when a handle was left open (a bug of
    // its owner). Once; the destructor calls it when nobody did.
    int close() noexcept;

private:
    void drain_posted() noexcept;

    uv_loop_t loop_{};
    UvHandle<uv_async_t> wakeup_;
    std::mutex mutex_;
    std::vector<std::function<void()>> posted_;
    bool accepting_ = true;
    bool closed_ = false;
};

// A repeating or one-shot timer on the loop. The callback must not throw.
class Timer final {
public:
    explicit Timer(EventLoop& loop);
    void start(std::chrono::milliseconds delay, std::chrono::milliseconds repeat, std::function<void()> fn);
    void stop() noexcept;

private:
    UvHandle<uv_timer_t> handle_;
    std::function<void()> fn_;
};

// Calls fn with the signal number each time one of `signals` arrives.
class SignalWatcher final {
public:
    SignalWatcher(EventLoop& loop, std::vector<int> signals, std::function<void(int)> fn);

private:
    std::vector<std::unique_ptr<UvHandle<uv_signal_t>>> handles_;
    std::function<void(int)> fn_;
};

// Calls fn when the socket has data to read.
class SocketWatcher final {
public:
    SocketWatcher(EventLoop& loop, int fd, std::function<void()> on_readable);

private:
    UvHandle<uv_poll_t> handle_;
    std::function<void()> fn_;
};

}  // namespace idemq::detail
