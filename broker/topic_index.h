// TopicIndex: the local sessions' topic subscriptions (ZeroMQ prefix
// semantics), and which sessions a topic reaches. Pure; not thread-safe
// (owned by the broker's loop thread).
//
// A session subscribed to overlapping prefixes ("or", "orders") gets each
// message once, as a ZeroMQ SUB socket would. Add and Remove say when a
// prefix gains its first or loses its last subscriber, which is when the
// broker changes its data SUB socket's subscriptions.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace meshbus {

class TopicIndex {
 public:
  // True when `prefix` had no subscriber before (the caller subscribes).
  bool Add(const std::string& prefix, uint64_t session);
  // True when `prefix` has no subscriber left (the caller unsubscribes).
  // Removing a subscription the session does not have changes nothing.
  bool Remove(const std::string& prefix, uint64_t session);
  // Every subscription of `session`; returns the prefixes left with none.
  std::vector<std::string> RemoveSession(uint64_t session);

  bool Has(const std::string& prefix, uint64_t session) const;
  // The sessions subscribed to exactly `prefix`; nullptr when none.
  const std::set<uint64_t>* SessionsOf(const std::string& prefix) const;
  // The sessions subscribed to a prefix of `topic`, each once, ascending.
  void Match(std::string_view topic, std::vector<uint64_t>* sessions) const;
  // True when some prefix of `topic` has a subscriber.
  bool Covers(std::string_view topic) const;
  size_t prefix_count() const { return by_prefix_.size(); }

 private:
  std::unordered_map<std::string, std::set<uint64_t>> by_prefix_;
  std::unordered_map<uint64_t, std::set<std::string>> by_session_;
  // How many prefixes have each length: a topic is looked up only at the
  // lengths that exist, usually one or two, not at every length.
  std::map<size_t, size_t> lengths_;
};

}  // namespace meshbus
