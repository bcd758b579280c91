// Sequence numbers of the data channel, at both ends. Pure; not thread-safe
// (owned by the broker's loop thread).
//
// A broker publishes every publish and broadcast once on its data PUB socket,
// and ZeroMQ sends each message only to the peers subscribed to its data
// topic. A receiver therefore sees a subset of an origin's messages, so one
// sequence per origin would show holes that are not losses. Instead the
// origin numbers each data topic's messages apart (OutboundStreams), and the
// receiver checks each (origin, data topic) stream it sees (InboundStreams):
// a jump is a loss, counted and reported. A loss at the tail of a stream,
// with nothing after it, is found by marks: every heartbeat interval the
// origin sends, on each topic it used since the last round, that topic's
// last number.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace meshbus {

class OutboundStreams {
 public:
  // Beyond max_topics counters, all are forgotten and the epoch moves on
  // (receivers then restart their checks), so a publisher of endless fresh
  // topics does not grow the table without bound.
  explicit OutboundStreams(size_t max_topics = 100'000) : max_topics_(max_topics) {}

  // The number of the next message on `data_topic`: 1, 2, 3, ...
  uint64_t Next(const std::string& data_topic);
  // Topics used since they were last marked, with their last number; at
  // most `max` (the rest come next time).
  std::vector<std::pair<std::string, uint64_t>> TakeMarks(size_t max);
  uint64_t epoch() const { return epoch_; }
  size_t topic_count() const { return streams_.size(); }

 private:
  struct Stream {
    uint64_t seq = 0;
    bool marked = true;  // false: sent on since the last mark
  };
  size_t max_topics_;
  uint64_t epoch_ = 1;
  std::unordered_map<std::string, Stream> streams_;
  std::vector<std::string> unmarked_;
};

class InboundStreams {
 public:
  explicit InboundStreams(size_t max_topics_per_origin = 100'000)
      : max_topics_(max_topics_per_origin) {}

  struct Verdict {
    bool deliver = true;  // false: a duplicate or an old message
    uint64_t lost = 0;    // messages of this stream missing before this one
  };
  Verdict OnData(const std::string& origin, uint64_t epoch, const std::string& data_topic,
                 uint64_t seq);
  // A mark: `seq` was the last message sent on the topic. Returns how many
  // of those never came.
  uint64_t OnMark(const std::string& origin, uint64_t epoch, const std::string& data_topic,
                  uint64_t seq);
  void ForgetOrigin(const std::string& origin) { origins_.erase(origin); }
  // Forgets the streams of topics we no longer subscribe to: if we subscribe
  // again, numbers will have moved on while we were away, and that is no loss.
  void ForgetUnless(const std::function<bool(const std::string& data_topic)>& still_wanted);
  size_t stream_count() const;

 private:
  struct Origin {
    uint64_t epoch = 0;
    std::unordered_map<std::string, uint64_t> last;  // data topic -> last seq seen
  };
  // The origin's table of streams, reset if it moved to another epoch.
  Origin& At(const std::string& origin, uint64_t epoch);
  size_t max_topics_;
  std::unordered_map<std::string, Origin> origins_;
};

}  // namespace meshbus
