#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "loop/event_loop.hpp"

using idemq::detail::EventLoop;

TEST_CASE("functions posted from other threads run on the loop thread, in order") {
    EventLoop loop;
    std::vector<int> ran;
    std::thread::id loop_thread;
    std::thread poster([&] {
        for (int i = 0; i < 100; ++i) loop.post([&ran, i] { ran.push_back(i); });
        loop.post([&] {
            loop_thread = std::this_thread::get_id();
            loop.stop();
        });
    });
    loop.run();
    poster.join();
    CHECK(loop_thread == std::this_thread::get_id());
    REQUIRE(ran.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(ran[static_cast<std::size_t>(i)] == i);
    CHECK(loop.close() == 0);
}

TEST_CASE("a loop whose timers, signal and socket watchers are gone closes with no handle left open") {
    EventLoop loop;
    int sockets[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sockets) == 0);
    {
        int fired = 0;
        idemq::detail::Timer timer(loop);
        idemq::detail::Timer never(loop);
        idemq::detail::SignalWatcher signals(loop, {SIGUSR2}, [](int) {});
        bool readable = false;
        idemq::detail::SocketWatcher socket(loop, sockets[0], [&] { readable = true; });
        never.start(std::chrono::hours(1), std::chrono::milliseconds(0), [] {});
        REQUIRE(::write(sockets[1], "x", 1) == 1);
        timer.start(std::chrono::milliseconds(1), std::chrono::milliseconds(1), [&] {
            if (++fired == 3 && readable) loop.stop();
            if (fired > 3 && readable) loop.stop();
        });
        loop.run();
        CHECK(fired >= 3);
        CHECK(readable);
    }
    // Every watcher closed its handle; the posts made now are dropped.
    loop.post([] { FAIL("ran after close"); });
    CHECK(loop.close() == 0);
    CHECK(loop.close() == 0);  // once only
    ::close(sockets[0]);
    ::close(sockets[1]);
}
