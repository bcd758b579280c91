// InputPoller: waits until one of the broker loop's ZeroMQ sockets may have
// input, with as few system calls as ZeroMQ's rules allow. Not thread-safe:
// the loop thread owns it, as it owns the sockets.
//
// Why not zmq_poll: it asks each socket for ZMQ_FD, polls them once without
// waiting, asks each for ZMQ_EVENTS, and before sleeping polls and asks every
// socket again; each ZMQ_EVENTS of a socket with nothing new is a poll(2) of
// its mailbox. With ten sockets a turn that handles one message cost about 27
// system calls, most of a broker's share of a request's round trip.
//
// What this relies on (libzmq's socket_base): a socket's input changes only
// by commands in its mailbox, which make its ZMQ_FD readable until they are
// processed, and every call on the socket may process them. So after the loop
// read a socket until it would block, its ZMQ_FD alone says when it may have
// input again, unless the loop made another call on it (a send, an option)
// which took in those commands; of a socket the loop sends on, Wait asks
// ZMQ_EVENTS before sleeping.
#pragma once

#include <poll.h>

#include <chrono>
#include <span>
#include <vector>

#include <zmq.hpp>

namespace meshbus {

// A socket the loop reads, and what the loop knows of its input.
struct PolledSocket {
  PolledSocket() = default;
  // `sent_on`: the loop makes calls on it other than receiving.
  PolledSocket(zmq::socket_ref socket, bool sent_on);

  zmq::socket_ref socket;
  int fd = -1;  // its ZMQ_FD, asked once
  bool sent_on = false;
  // Set by Wait. The loop clears it once it has read the socket until a
  // receive would block, and leaves it set when it stopped before.
  bool may_have_input = true;
};

class InputPoller {
 public:
  // Returns once a socket may have input (its may_have_input set), `wake_fd`
  // is readable, or `timeout` has passed; at once if a socket may still
  // have input. Returns whether `wake_fd` is readable.
  bool Wait(std::span<PolledSocket* const> sockets, int wake_fd, std::chrono::milliseconds timeout);

 private:
  std::vector<pollfd> fds_;  // reused, to spare an allocation per turn
};

}  // namespace meshbus
