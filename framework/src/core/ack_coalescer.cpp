#include "core/ack_coalescer.hpp"

namespace idemq::detail {

AckCoalescer::State* AckCoalescer::slot(std::uint64_t tag) noexcept {
    if (tag <= floor_ || tag - floor_ > slots_.size()) return nullptr;
    return &slots_[tag - floor_ - 1];
}

void AckCoalescer::delivered(std::uint64_t tag) {
    // A tag at or below the floor is settled already: only a new channel
    // (reset) hands it out again.
    if (tag <= floor_) return;
    const std::uint64_t index = tag - floor_ - 1;
    // Tags are consecutive, so this grows by one; any tag skipped stays
    // unknown and stops every run at it.
    if (index >= slots_.size()) slots_.resize(index + 1, State::kUnknown);
    if (slots_[index] == State::kUnknown) slots_[index] = State::kOpen;
}

void AckCoalescer::ready(std::uint64_t tag, Clock::time_point now) {
    State* state = slot(tag);
    if (state == nullptr || *state != State::kOpen) return;
    *state = State::kReady;
    ++ready_count_;
    held_.push_back({tag, now});
}

void AckCoalescer::done(std::uint64_t tag) {
    State* state = slot(tag);
    if (state == nullptr) return;
    if (*state == State::kReady) --ready_count_;
    *state = State::kDone;
    drop_settled_front();
}

void AckCoalescer::drop_settled_front() noexcept {
    while (!slots_.empty() && slots_.front() == State::kDone) {
        slots_.pop_front();
        ++floor_;
    }
}

void AckCoalescer::ack_alone(std::uint64_t tag, Plan& plan) {
    plan.frames.push_back({tag, false});
    plan.acked.push_back(tag);
    *slot(tag) = State::kDone;
    --ready_count_;
}

AckCoalescer::Plan AckCoalescer::plan(Clock::time_point now, bool everything) {
    Plan out;
    // The run: from the floor up while every tag is ready or done. Done tags
    // inside it are no longer outstanding, so the multiple ack skips them.
    std::size_t run = 0;
    std::uint64_t highest_ready = 0;
    for (; run < slots_.size() && (slots_[run] == State::kReady || slots_[run] == State::kDone); ++run) {
        if (slots_[run] != State::kReady) continue;
        highest_ready = floor_ + 1 + run;
        out.acked.push_back(highest_ready);
    }
    if (!out.acked.empty()) {
        out.frames.push_back({highest_ready, out.acked.size() > 1});
        ready_count_ -= out.acked.size();
    }
    slots_.erase(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(run));
    floor_ += run;

    // Beyond the gap: what has waited its hold, or all of it under pressure.
    const bool all = everything || ready_count_ >= options_.pressure;
    while (!held_.empty()) {
        const Held oldest = held_.front();
        State* state = slot(oldest.tag);
        if (state != nullptr && *state == State::kReady) {
            if (!all && now < oldest.ready_at + options_.hold) break;
            ack_alone(oldest.tag, out);
        }
        held_.pop_front();
    }
    return out;
}

std::optional<AckCoalescer::Clock::time_point> AckCoalescer::next_deadline() {
    while (!held_.empty()) {
        State* state = slot(held_.front().tag);
        if (state != nullptr && *state == State::kReady) return held_.front().ready_at + options_.hold;
        held_.pop_front();
    }
    return std::nullopt;
}

void AckCoalescer::reset() noexcept {
    floor_ = 0;
    slots_.clear();
    held_.clear();
    ready_count_ = 0;
}

}  // namespace idemq::detail
