#include <doctest/doctest.h>

#include <vector>

#include "core/ack_coalescer.hpp"

using idemq::detail::AckCoalescer;
using Frame = AckCoalescer::Frame;
using Frames = std::vector<Frame>;
using Tags = std::vector<std::uint64_t>;
using std::chrono::milliseconds;

namespace {

const AckCoalescer::Clock::time_point kT0{};

AckCoalescer delivered(std::uint64_t from, std::uint64_t to, AckCoalescer::Options options = {}) {
    AckCoalescer acks(options);
    for (std::uint64_t tag = from; tag <= to; ++tag) acks.delivered(tag);
    return acks;
}

}  // namespace

TEST_CASE("a contiguous run of ready tags is acked by one multiple ack up to its highest") {
    auto acks = delivered(1, 4);
    for (const std::uint64_t tag : {3, 1, 2, 4}) acks.ready(tag, kT0);
    const auto plan = acks.plan(kT0);
    CHECK(plan.frames == Frames{{4, true}});
    CHECK(plan.acked == Tags{1, 2, 3, 4});
    CHECK(acks.ready_count() == 0);
    CHECK(acks.plan(kT0).frames.empty());
}

TEST_CASE("a run of one ready tag is acked alone, not as multiple") {
    auto acks = delivered(1, 2);
    acks.ready(1, kT0);
    const auto plan = acks.plan(kT0);
    CHECK(plan.frames == Frames{{1, false}});
    CHECK(plan.acked == Tags{1});
}

TEST_CASE("an open tag stops the run: what is ready beyond it is held, not covered") {
    auto acks = delivered(1, 5);
    for (const std::uint64_t tag : {1, 2, 4, 5}) acks.ready(tag, kT0);
    auto plan = acks.plan(kT0);
    CHECK(plan.frames == Frames{{2, true}});
    CHECK(plan.acked == Tags{1, 2});
    CHECK(acks.ready_count() == 2);
    REQUIRE(acks.next_deadline().has_value());
    CHECK(*acks.next_deadline() == kT0 + milliseconds(5));

    // The gap closes within the hold: one multiple ack for the rest.
    acks.ready(3, kT0 + milliseconds(1));
    plan = acks.plan(kT0 + milliseconds(1));
    CHECK(plan.frames == Frames{{5, true}});
    CHECK(plan.acked == Tags{3, 4, 5});
    CHECK_FALSE(acks.next_deadline().has_value());
}

TEST_CASE("out-of-order completion is acked once its run is whole") {
    auto acks = delivered(1, 6);
    for (const std::uint64_t tag : {6, 4, 2}) acks.ready(tag, kT0);
    CHECK(acks.plan(kT0).frames.empty());
    acks.ready(1, kT0);
    CHECK(acks.plan(kT0).frames == Frames{{2, true}});
    acks.ready(5, kT0);
    CHECK(acks.plan(kT0).frames.empty());
    acks.ready(3, kT0);
    const auto plan = acks.plan(kT0);
    CHECK(plan.frames == Frames{{6, true}});
    CHECK(plan.acked == Tags{3, 4, 5, 6});
}

TEST_CASE("held tags are acked one by one once their hold is over, and never again") {
    auto acks = delivered(1, 4, {.hold = milliseconds(5), .pressure = 100});
    acks.ready(2, kT0);
    acks.ready(3, kT0 + milliseconds(2));
    CHECK(acks.plan(kT0 + milliseconds(4)).frames.empty());
    auto plan = acks.plan(kT0 + milliseconds(5));
    CHECK(plan.frames == Frames{{2, false}});
    plan = acks.plan(kT0 + milliseconds(7));
    CHECK(plan.frames == Frames{{3, false}});
    CHECK(acks.ready_count() == 0);

    // When tag 1 ends, the run skips the tags acked alone: a single ack of
    // 1, not a multiple one that would name 3 again.
    acks.ready(1, kT0 + milliseconds(8));
    plan = acks.plan(kT0 + milliseconds(8));
    CHECK(plan.frames == Frames{{1, false}});
    CHECK(plan.acked == Tags{1});
    acks.ready(4, kT0 + milliseconds(9));
    CHECK(acks.plan(kT0 + milliseconds(9)).frames == Frames{{4, false}});
}

TEST_CASE("under prefetch pressure every held tag is acked at once, hold or not") {
    auto acks = delivered(1, 5, {.hold = milliseconds(5), .pressure = 3});
    acks.ready(2, kT0);
    acks.ready(3, kT0);
    CHECK(acks.plan(kT0).frames.empty());
    acks.ready(4, kT0);
    const auto plan = acks.plan(kT0);
    CHECK(plan.frames == Frames{{2, false}, {3, false}, {4, false}});
    CHECK(acks.ready_count() == 0);
}

TEST_CASE("everything acks every ready tag, the held ones alone, and leaves open ones alone") {
    auto acks = delivered(1, 5);
    for (const std::uint64_t tag : {1, 2, 4}) acks.ready(tag, kT0);
    const auto plan = acks.plan(kT0, true);
    CHECK(plan.frames == Frames{{2, true}, {4, false}});
    CHECK(plan.acked == Tags{1, 2, 4});
}

TEST_CASE("a tag never seen delivered stops the run") {
    AckCoalescer acks({});
    acks.delivered(1);
    acks.delivered(3);  // 2 never arrived
    acks.ready(1, kT0);
    acks.ready(3, kT0);
    CHECK(acks.plan(kT0).frames == Frames{{1, false}});
    // A ready() of the unseen tag is ignored: it was never delivered.
    acks.ready(2, kT0);
    CHECK(acks.plan(kT0).frames.empty());
    CHECK(acks.plan(kT0 + milliseconds(5)).frames == Frames{{3, false}});
}

TEST_CASE("a tag rejected in the middle of a run does not stop it, and is not named by the ack") {
    auto acks = delivered(1, 4);
    acks.ready(1, kT0);
    acks.done(2);
    acks.ready(3, kT0);
    acks.ready(4, kT0);
    const auto plan = acks.plan(kT0);
    CHECK(plan.frames == Frames{{4, true}});
    CHECK(plan.acked == Tags{1, 3, 4});
}

TEST_CASE("a run of rejected tags below a ready one ends in a single ack") {
    auto acks = delivered(1, 3);
    acks.done(1);
    acks.done(2);
    acks.ready(3, kT0);
    CHECK(acks.plan(kT0).frames == Frames{{3, false}});
}

TEST_CASE("after a reset, tags of the old channel are never acked on the new one") {
    auto acks = delivered(1, 3);
    acks.ready(2, kT0);
    acks.ready(3, kT0);
    acks.reset();  // the connection is lost: 1..3 are requeued by the broker
    CHECK(acks.plan(kT0 + milliseconds(10), true).frames.empty());
    CHECK_FALSE(acks.next_deadline().has_value());
    // A late completion of an old tag finds it unknown on the new channel.
    acks.ready(1, kT0);
    CHECK(acks.plan(kT0, true).frames.empty());

    acks.delivered(1);
    acks.delivered(2);
    acks.ready(2, kT0);
    CHECK(acks.plan(kT0).frames.empty());
    acks.ready(1, kT0);
    CHECK(acks.plan(kT0).frames == Frames{{2, true}});
}
