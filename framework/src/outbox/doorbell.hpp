#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <vector>

namespace idemq::detail {

// One relay's wake-up call: an eventfd, so that the relay can wait for it and
// for its Postgres connection (a NOTIFY from another process) in one poll().
class WakeUp final {
public:
    WakeUp() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
        if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    }
    ~WakeUp() { ::close(fd_); }
    WakeUp(const WakeUp&) = delete;
    WakeUp& operator=(const WakeUp&) = delete;

    // Any thread, any number of times before the waiter clears it.
    void ring() noexcept {
        const std::uint64_t one = 1;
        // Fails only when the counter would overflow: it is rung already.
        [[maybe_unused]] const auto written = ::write(fd_, &one, sizeof(one));
    }
    void clear() noexcept {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto read = ::read(fd_, &count, sizeof(count));
    }
    [[nodiscard]] int fd() const noexcept { return fd_; }

private:
    int fd_;
};

// Wakes the relays of this process the moment a handler's COMMIT staged rows,
// instead of at their next poll. Process-wide: staging code and relays meet
// here without knowing each other. Relays in other processes learn of the
// rows by polling, or by a NOTIFY when the staging side sends one.
class OutboxDoorbell final {
public:
    [[nodiscard]] static OutboxDoorbell& instance() {
        static OutboxDoorbell doorbell;
        return doorbell;
    }

    // Any thread; cheap when no relay runs.
    void ring() {
        std::lock_guard lock(mutex_);
        for (WakeUp* relay : relays_) relay->ring();
    }

    // A relay's WakeUp rings with the doorbell while it is subscribed.
    class Subscription final {
    public:
        explicit Subscription(WakeUp& wake_up) : wake_up_(wake_up) {
            auto& doorbell = instance();
            std::lock_guard lock(doorbell.mutex_);
            doorbell.relays_.push_back(&wake_up_);
        }
        ~Subscription() {
            auto& doorbell = instance();
            std::lock_guard lock(doorbell.mutex_);
            std::erase(doorbell.relays_, &wake_up_);
        }
        Subscription(const Subscription&) = delete;
        Subscription& operator=(const Subscription&) = delete;

    private:
        WakeUp& wake_up_;
    };

private:
    OutboxDoorbell() = default;

    std::mutex mutex_;
    std::vector<WakeUp*> relays_;
};

}  // namespace idemq::detail
