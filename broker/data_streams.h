// Sequence numbers of the data channel, at both ends. Pure; not thread-safe
// (owned by the broker's loop thread).
//
// A broker publishes every publish and broadcast once on its data XPUB
// socket, and ZeroMQ sends each message only to the peers subscribed to a
// prefix of its data topic. A receiver therefore sees a subset of an
// origin's messages, so one sequence per origin would show holes that are
// not losses. Instead the origin numbers messages per subscription: the XPUB
// socket tells it every prefix some peer subscribes to, and each message
// carries the next number of every subscribed prefix it matches
// (OutboundStreams). A receiver follows the streams of its own
// subscriptions (InboundStreams): a jump is a loss, counted and reported,
// even for a topic it has never seen before. A loss at the tail of a
// stream, with nothing after it, is found by marks: for a while after a
// stream was used, the origin sends its last number every heartbeat
// interval (repeated for 30 rounds, as a mark can be dropped like any message).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace meshbus {

class OutboundStreams {
 public:
  // Rounds of marks sent after a stream's last use: 3 s at the default
  // heartbeat, longer than a peer can stall before it is declared dead, so
  // a peer whose queue was full while marks were sent still gets a later one.
  static constexpr int kMarkRounds = 30;
  // Beyond max_streams counters, all are forgotten and the epoch moves on
  // (receivers then restart their checks).
  explicit OutboundStreams(size_t max_streams = 100'000) : max_streams_(max_streams) {}

  // A peer subscribed to, or the last one unsubscribed from, a data-topic
  // prefix. A stream's numbers survive an unsubscription, so a peer whose
  // connection dropped and came back sees the jump over what it missed.
  void Subscribed(const std::string& prefix);
  void Unsubscribed(const std::string& prefix);
  // The streams a message on `data_topic` belongs to, with its number in
  // each ("" for the stream whose prefix is the whole topic). Empty: no peer
  // wants it.
  void Next(std::string_view data_topic, std::vector<std::pair<std::string, uint64_t>>* out);
  // Marks due this round: (stream prefix, last number); at most `max`.
  std::vector<std::pair<std::string, uint64_t>> TakeMarks(size_t max);
  uint64_t epoch() const { return epoch_; }
  size_t stream_count() const { return streams_.size(); }
  bool subscribed(const std::string& prefix) const;

 private:
  struct Stream {
    uint64_t seq = 0;
    bool subscribed = false;
    int marks_due = 0;
  };
  size_t max_streams_;
  uint64_t epoch_ = 1;
  std::unordered_map<std::string, Stream> streams_;
  std::map<size_t, size_t> lengths_;  // of subscribed prefixes: the lengths to look up
  std::deque<std::string> marking_;   // streams with marks due
};

class InboundStreams {
 public:
  explicit InboundStreams(size_t max_topics_per_origin = 100'000)
      : max_topics_(max_topics_per_origin) {}

  // The verdict on a batch of `count` messages numbered from `first`.
  struct Verdict {
    uint64_t seen = 0;  // the batch's first `seen` messages came before: not again
    uint64_t lost = 0;  // messages of this stream missing before the batch
  };
  Verdict OnData(const std::string& origin, uint64_t epoch, const std::string& data_topic,
                 uint64_t first, uint64_t count = 1);
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
  // The last number seen in a stream; nullptr when this is the first we see
  // of it (then `seq` becomes its start: what came before was not for us).
  uint64_t* Last(const std::string& origin, uint64_t epoch, const std::string& stream,
                 uint64_t seq);
  size_t max_topics_;
  std::unordered_map<std::string, Origin> origins_;
};

}  // namespace meshbus
