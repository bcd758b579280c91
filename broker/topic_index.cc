#include "broker/topic_index.h"

#include <algorithm>

namespace meshbus {

bool TopicIndex::Add(const std::string& prefix, uint64_t session) {
  std::set<uint64_t>& sessions = by_prefix_[prefix];
  bool first = sessions.empty();
  if (!sessions.insert(session).second) return false;
  by_session_[session].insert(prefix);
  if (first) ++lengths_[prefix.size()];
  return first;
}

bool TopicIndex::Remove(const std::string& prefix, uint64_t session) {
  auto it = by_prefix_.find(prefix);
  if (it == by_prefix_.end() || it->second.erase(session) == 0) return false;
  auto s = by_session_.find(session);
  if (s != by_session_.end()) {
    s->second.erase(prefix);
    if (s->second.empty()) by_session_.erase(s);
  }
  if (!it->second.empty()) return false;
  by_prefix_.erase(it);
  auto len = lengths_.find(prefix.size());
  if (--len->second == 0) lengths_.erase(len);
  return true;
}

std::vector<std::string> TopicIndex::RemoveSession(uint64_t session) {
  std::vector<std::string> emptied;
  auto s = by_session_.find(session);
  if (s == by_session_.end()) return emptied;
  std::set<std::string> prefixes = s->second;
  for (const std::string& p : prefixes) {
    if (Remove(p, session)) emptied.push_back(p);
  }
  return emptied;
}

bool TopicIndex::Has(const std::string& prefix, uint64_t session) const {
  auto it = by_prefix_.find(prefix);
  return it != by_prefix_.end() && it->second.count(session) > 0;
}

const std::set<uint64_t>* TopicIndex::SessionsOf(const std::string& prefix) const {
  auto it = by_prefix_.find(prefix);
  return it == by_prefix_.end() ? nullptr : &it->second;
}

void TopicIndex::Match(std::string_view topic, std::vector<uint64_t>* sessions) const {
  sessions->clear();
  std::string key;
  for (const auto& [len, count] : lengths_) {
    if (len > topic.size()) break;
    key.assign(topic.substr(0, len));
    auto it = by_prefix_.find(key);
    if (it == by_prefix_.end()) continue;
    sessions->insert(sessions->end(), it->second.begin(), it->second.end());
  }
  std::sort(sessions->begin(), sessions->end());
  sessions->erase(std::unique(sessions->begin(), sessions->end()), sessions->end());
}

bool TopicIndex::Covers(std::string_view topic) const {
  std::string key;
  for (const auto& [len, count] : lengths_) {
    if (len > topic.size()) break;
    key.assign(topic.substr(0, len));
    if (by_prefix_.count(key)) return true;
  }
  return false;
}

}  // namespace meshbus
