#include "broker/input_poller.h"

#include <algorithm>
#include <cstdint>

namespace meshbus {

PolledSocket::PolledSocket(zmq::socket_ref s, bool sends)
    : socket(s), fd(static_cast<int>(s.get(zmq::sockopt::fd))), sent_on(sends) {}

bool InputPoller::Wait(std::span<PolledSocket* const> sockets, int wake_fd,
                       std::chrono::milliseconds timeout) {
  bool ready = false;
  for (PolledSocket* s : sockets) ready = ready || s->may_have_input;
  // A call since the last read may have taken in input that its descriptor
  // no longer signals: ask, once per wait, of each socket the loop calls.
  for (PolledSocket* s : sockets) {
    if (s->may_have_input || !s->sent_on) continue;
    if (s->socket.get(zmq::sockopt::events) & ZMQ_POLLIN) s->may_have_input = ready = true;
  }
  fds_.clear();
  fds_.push_back({wake_fd, POLLIN, 0});
  for (PolledSocket* s : sockets) fds_.push_back({s->fd, POLLIN, 0});
  int wait_ms = ready ? 0 : static_cast<int>(std::max<int64_t>(timeout.count(), 0));
  int n = ::poll(fds_.data(), fds_.size(), wait_ms);
  if (n <= 0) return false;  // timed out, or EINTR: the loop comes back soon
  for (size_t i = 0; i < sockets.size(); ++i) {
    if (fds_[i + 1].revents != 0) sockets[i]->may_have_input = true;
  }
  return (fds_[0].revents & POLLIN) != 0;
}

}  // namespace meshbus
