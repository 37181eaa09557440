#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace idemq::detail {

// Which acks to send for the deliveries of one channel, so that contiguous
// runs of tags are settled by one basic.ack with multiple=true. Pure: it
// knows tags and their states, never the broker. Loop thread only.
//
// Tags on one AMQP channel are consecutive from 1. Each is unknown (never
// seen delivered), open (outcome not known yet), ready (committed or
// confirmed: may be acked) or done (acked or rejected already). A multiple
// ack covers every outstanding tag up to its own, so it is sent only for a
// prefix above the settled floor whose tags are all ready or done: an open
// or unknown tag stops the run, and is never covered. Ready tags beyond such
// a gap are held, and acked one by one once they have waited `hold`, or at
// once when `pressure` of them are held (they occupy the prefetch window).
class AckCoalescer final {
public:
    using Clock = std::chrono::steady_clock;

    struct Options {
        std::chrono::milliseconds hold{5};
        std::size_t pressure = 16;
    };

    struct Frame {
        std::uint64_t tag = 0;
        bool multiple = false;
        bool operator==(const Frame&) const = default;
    };

    // The frames to send, in order, and every delivery they settle.
    struct Plan {
        std::vector<Frame> frames;
        std::vector<std::uint64_t> acked;
    };

    explicit AckCoalescer(Options options) noexcept : options_(options) {}

    // The channel delivered `tag`: open until ready() or done().
    void delivered(std::uint64_t tag);
    // The outcome of `tag` is known and it may be acked. Ignored unless the
    // tag is open: a tag never delivered is never acked.
    void ready(std::uint64_t tag, Clock::time_point now);
    // `tag` was settled outside the coalescer (rejected, or refused on
    // arrival): it no longer stops a run.
    void done(std::uint64_t tag);

    // What to ack now. `everything` acks every ready tag, held or not (the
    // connection is about to close). The plan is taken as sent.
    [[nodiscard]] Plan plan(Clock::time_point now, bool everything = false);
    // When the oldest held tag's hold ends, if any tag is held.
    [[nodiscard]] std::optional<Clock::time_point> next_deadline();
    // Ready tags not acked yet.
    [[nodiscard]] std::size_t ready_count() const noexcept { return ready_count_; }

    // A new channel: every tag of the old one is forgotten, never acked.
    void reset() noexcept;

private:
    enum class State : std::uint8_t { kUnknown, kOpen, kReady, kDone };
    struct Held {
        std::uint64_t tag;
        Clock::time_point ready_at;
    };

    [[nodiscard]] State* slot(std::uint64_t tag) noexcept;
    void ack_alone(std::uint64_t tag, Plan& plan);
    void drop_settled_front() noexcept;

    Options options_;
    // slots_[i] is tag floor_ + 1 + i; every tag up to floor_ is settled.
    std::uint64_t floor_ = 0;
    std::deque<State> slots_;
    // Every ready() in order (so by time); entries no longer ready are
    // skipped lazily.
    std::deque<Held> held_;
    std::size_t ready_count_ = 0;
};

}  // namespace idemq::detail
