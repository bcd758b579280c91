#include "broker/failure_detector.h"

#include <algorithm>

namespace meshbus {

void FailureDetector::Track(const std::string& peer, TimePoint now) {
  PeerState& p = peers_[peer];
  p = PeerState{};
  p.last_heard = now;
}

void FailureDetector::Forget(const std::string& peer) {
  peers_.erase(peer);
}

void FailureDetector::Heard(const std::string& peer, TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  PeerState& p = it->second;
  p.last_heard = now;
  // After a disconnect, messages already on their way still arrive; they do
  // not prove the peer alive. A reconnect or a probe answer does.
  if (!p.disconnected) p.suspect = false;
}

void FailureDetector::ProbeAnswered(const std::string& peer, TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second.disconnected = false;
  Heard(peer, now);
}

void FailureDetector::Disconnected(const std::string& peer, TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  PeerState& p = it->second;
  p.disconnected = true;
  p.retries_since_disconnect = 0;
  p.probe_due = true;
  TimePoint deadline = now + options_.disconnect_timeout;
  p.deadline = p.suspect ? std::min(p.deadline, deadline) : deadline;
  p.suspect = true;
}

void FailureDetector::Connected(const std::string& peer, TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  PeerState& p = it->second;
  if (!p.disconnected) return;
  p.disconnected = false;
  // Something listens again: give it the ordinary probe time to speak.
  if (p.suspect) p.deadline = std::max(p.deadline, now + options_.probe_timeout);
}

void FailureDetector::ConnectRetried(const std::string& peer, TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  PeerState& p = it->second;
  if (!p.disconnected) return;
  if (++p.retries_since_disconnect >= options_.refused_retries_for_dead) p.dead_now = true;
}

FailureDetector::Verdicts FailureDetector::Tick(TimePoint now) {
  Verdicts v;
  for (auto& [name, p] : peers_) {
    if (p.declared_dead) continue;
    if (p.dead_now) {
      p.declared_dead = true;
      v.dead.push_back(name);
      continue;
    }
    if (!p.suspect && now - p.last_heard >= options_.suspicion_timeout) {
      p.suspect = true;
      p.deadline = now + options_.probe_timeout;
      p.probe_due = true;
    }
    if (p.suspect && now >= p.deadline) {
      p.declared_dead = true;
      v.dead.push_back(name);
      continue;
    }
    if (p.probe_due) {
      p.probe_due = false;
      v.probe.push_back(name);
    }
  }
  return v;
}

void FailureDetector::Shift(Duration gap) {
  for (auto& [name, p] : peers_) {
    p.last_heard += gap;
    if (p.suspect) p.deadline += gap;
  }
}

bool FailureDetector::IsSuspect(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.suspect;
}

FailureDetector::TimePoint FailureDetector::LastHeard(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? TimePoint{} : it->second.last_heard;
}

}  // namespace meshbus
