// Tests of broker/input_poller.h on real ZeroMQ sockets: a DEALER sends to a
// ROUTER over inproc, and the ROUTER's input is waited for. A Wait that
// misses input runs to its timeout, so waits that must end early have a long
// one and the test checks what they saw, not how fast.

#include "broker/input_poller.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace meshbus {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kLong = 20s;  // what a wait that must end early would cost if it did not

class InputPollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.set(zmq::sockopt::linger, 0);
    dealer_.set(zmq::sockopt::linger, 0);
    router_.bind("inproc://poller-test");
    dealer_.connect("inproc://poller-test");
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_GE(wake_fd_, 0);
  }
  void TearDown() override { ::close(wake_fd_); }

  // Reads the router until a receive would block, as the loop does.
  int DrainRouter(PolledSocket& input) {
    int messages = 0;
    zmq::message_t id, body;
    while (router_.recv(id, zmq::recv_flags::dontwait)) {
      EXPECT_TRUE(router_.recv(body, zmq::recv_flags::dontwait));
      ++messages;
    }
    input.may_have_input = false;
    return messages;
  }
  bool Wait(PolledSocket& input, std::chrono::milliseconds timeout) {
    PolledSocket* sockets[] = {&input};
    return poller_.Wait(sockets, wake_fd_, timeout);
  }

  zmq::context_t ctx_{1};
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  zmq::socket_t dealer_{ctx_, zmq::socket_type::dealer};
  int wake_fd_ = -1;
  InputPoller poller_;
};

TEST_F(InputPollerTest, WithNothingToReadItWaitsForTheTimeout) {
  PolledSocket input(router_, /*sent_on=*/true);
  EXPECT_EQ(DrainRouter(input), 0);
  auto start = Clock::now();
  EXPECT_FALSE(Wait(input, 50ms));
  EXPECT_GE(Clock::now() - start, 45ms);  // it slept, rather than spin
  EXPECT_FALSE(input.may_have_input);
}

TEST_F(InputPollerTest, AMessageEndsTheWait) {
  for (bool sent_on : {false, true}) {
    SCOPED_TRACE(sent_on ? "a socket the loop sends on" : "a socket only read");
    PolledSocket input(router_, sent_on);
    DrainRouter(input);
    dealer_.send(zmq::str_buffer("hello"));
    EXPECT_FALSE(Wait(input, kLong));
    EXPECT_TRUE(input.may_have_input);
    EXPECT_EQ(DrainRouter(input), 1);
  }
}

// A call on the socket that processes its commands (here ZMQ_EVENTS, as a
// send may) takes the input in: the descriptor no longer signals it.
TEST_F(InputPollerTest, InputTakenInByAnotherCallIsSeenOnlyOfASocketSentOn) {
  struct Case {
    bool sent_on;
    bool seen;
  };
  for (const Case& c : {Case{true, true}, Case{false, false}}) {
    SCOPED_TRACE(c.sent_on ? "a socket the loop sends on" : "a socket only read");
    PolledSocket input(router_, c.sent_on);
    DrainRouter(input);
    dealer_.send(zmq::str_buffer("hello"));
    auto deadline = Clock::now() + 5s;
    while (!(router_.get(zmq::sockopt::events) & ZMQ_POLLIN) && Clock::now() < deadline) {
    }
    ASSERT_TRUE(router_.get(zmq::sockopt::events) & ZMQ_POLLIN);
    Wait(input, c.seen ? kLong : 100ms);
    EXPECT_EQ(input.may_have_input, c.seen);
    EXPECT_EQ(DrainRouter(input), 1);
  }
}

TEST_F(InputPollerTest, ASocketThatMayStillHaveInputDoesNotWait) {
  PolledSocket input(router_, /*sent_on=*/false);  // as left by a read cut short
  ASSERT_TRUE(input.may_have_input);
  auto start = Clock::now();
  EXPECT_FALSE(Wait(input, kLong));
  EXPECT_LT(Clock::now() - start, kLong / 2);
  EXPECT_TRUE(input.may_have_input);
}

TEST_F(InputPollerTest, TheWakeDescriptorEndsTheWait) {
  PolledSocket input(router_, /*sent_on=*/true);
  DrainRouter(input);
  uint64_t one = 1;
  ASSERT_EQ(::write(wake_fd_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  EXPECT_TRUE(Wait(input, kLong));
  EXPECT_FALSE(input.may_have_input);
}

}  // namespace
}  // namespace meshbus
