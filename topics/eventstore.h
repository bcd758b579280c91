// The vocabulary of the event-store coordination layer (DESIGN.md §6, issue
// #5), in reckon_db's own formats where it has them: store, subscription and
// feature ids and their validation; subscription topics, emitter names, the
// group keys of emitter and tracker groups and the registry keys the layer
// keeps its state under; and the msgpack records that travel or are kept:
// events, store configs, subscriptions, tracker notices. Pure functions and
// value types; thread-safe.
//
// Formats (each one msgpack array; decoding checks every field and refuses
// extra ones, so a record means one thing to every reader):
//   Event        [event_id, event_type, stream_id, version (int), data (bin),
//                 metadata (bin), [tag...], timestamp_ms (int), epoch_us (int),
//                 data_content_type, metadata_content_type]
//   StoreConfig  [store_id, data_dir, mode ("single"|"cluster"), timeout_ms,
//                 writer_pool, reader_pool, gateway_pool, [[key, value]...]]
//   Subscription [id, type ("stream"|"event_type"|"event_pattern"|"tags"),
//                 selector, name, pool_size, checkpoint (uint or nil),
//                 [[key, value]...]]
//   TrackerNotice [kind ("created"|"deleted"|"updated"), feature, data (bin)]
//   EmitterNames [name...]
//   StoreAnnouncement [registered_at_us (int), StoreConfig]
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "topics/status.h"

namespace meshbus::eventstore {

// Ids are short enough that every name built from them stays within the
// 255-byte limit of topics, groups and registry names.
inline constexpr size_t kMaxIdBytes = 100;
inline constexpr uint32_t kMaxPoolSize = 64;
inline constexpr std::string_view kAllSubscription = "$all";
inline constexpr std::string_view kDefaultSubscriptionName = "all-events";
// The features reckon_db tracks; any other valid id is allowed too.
inline constexpr std::string_view kSubscriptionsFeature = "subscriptions";
inline constexpr std::string_view kStreamsFeature = "streams";
inline constexpr std::string_view kSnapshotsFeature = "snapshots";

// Store ids and features: 1..100 of [A-Za-z0-9_.-]. Subscription ids: the
// same, or "$all". No ':' (it separates the parts of topics and group keys)
// and nothing a topic or the CLI would choke on.
Status ValidateStoreId(std::string_view store_id);
Status ValidateSubscriptionId(std::string_view subscription_id);
Status ValidateFeature(std::string_view feature);
Status ValidatePoolSize(uint32_t pool_size);

// "<store>:<subscription>", e.g. "orders:$all": where an emitter publishes.
std::string SubscriptionTopic(std::string_view store_id, std::string_view subscription_id);
// "<store>_<sub>_emitter" for n = 1, "<store>_<sub>_emitter_<n>" for n >= 2.
std::string EmitterName(std::string_view store_id, std::string_view subscription_id, uint32_t n);
// The names of a pool of `pool_size`, first to last.
std::vector<std::string> EmitterNames(std::string_view store_id, std::string_view subscription_id,
                                      uint32_t pool_size);

// Process groups: (scope, group) of the emitters of a subscription and of
// the trackers of a feature.
inline constexpr std::string_view kEmitterScope = "$es.emitters";
inline constexpr std::string_view kTrackerScope = "$es.trackers";
std::string EmitterGroup(std::string_view store_id, std::string_view subscription_id);
std::string TrackerGroup(std::string_view store_id, std::string_view feature);

// Registry keys: the store leader's name, and the records that keep a store's
// subscriptions and persisted emitter names.
std::string LeaderName(std::string_view store_id);
std::string SubscriptionKeyPrefix(std::string_view store_id);
std::string SubscriptionKey(std::string_view store_id, std::string_view subscription_id);
std::string EmittersKey(std::string_view store_id, std::string_view subscription_id);
// The registry name of a store's announcement on a node:
// "$es/stores/<store>/<node>"; StoreNamePrefix() is "$es/stores/".
std::string StoreNamePrefix();
std::string StoreName(std::string_view store_id, std::string_view node);

// ---- records -------------------------------------------------------------------

struct Event {
  std::string event_id, event_type, stream_id;
  int64_t version = 0;
  std::string data, metadata;
  std::vector<std::string> tags;
  int64_t timestamp_ms = 0;  // when it was written, wall clock
  int64_t epoch_us = 0;      // the same, in microseconds
  std::string data_content_type = "application/octet-stream";
  std::string metadata_content_type = "application/octet-stream";
  friend bool operator==(const Event&, const Event&) = default;
};
std::string EncodeEvent(const Event& event);
Result<Event> DecodeEvent(std::string_view bytes);

enum class StoreMode { kSingle, kCluster };
std::string_view StoreModeName(StoreMode mode);  // "single", "cluster"
std::optional<StoreMode> ParseStoreMode(std::string_view name);

struct StoreConfig {
  std::string store_id;
  std::string data_dir;
  StoreMode mode = StoreMode::kSingle;
  uint64_t timeout_ms = 5000;
  uint32_t writer_pool = 10, reader_pool = 10, gateway_pool = 1;
  std::map<std::string, std::string> options;
  friend bool operator==(const StoreConfig&, const StoreConfig&) = default;
};
Status ValidateStoreConfig(const StoreConfig& config);
std::string EncodeStoreConfig(const StoreConfig& config);
Result<StoreConfig> DecodeStoreConfig(std::string_view bytes);

// Which events a subscription selects: a stream by id, an event type, a
// stream-id pattern with '*' wildcards (e.g. "orders-*"), or events with any
// of the comma-separated tags. "$all" selects every event.
enum class SubscriptionType { kStream, kEventType, kEventPattern, kTags };
std::string_view SubscriptionTypeName(SubscriptionType type);
std::optional<SubscriptionType> ParseSubscriptionType(std::string_view name);

struct Subscription {
  std::string id;
  SubscriptionType type = SubscriptionType::kStream;
  std::string selector;
  std::string name;
  uint32_t pool_size = 1;
  std::optional<uint64_t> checkpoint;
  std::map<std::string, std::string> options;
  friend bool operator==(const Subscription&, const Subscription&) = default;
};
// The default subscription a leader saves on activation: "$all", named
// "all-events", one emitter.
Subscription DefaultSubscription();
Status ValidateSubscription(const Subscription& subscription);
std::string EncodeSubscription(const Subscription& subscription);
Result<Subscription> DecodeSubscription(std::string_view bytes);
bool Selects(const Subscription& subscription, const Event& event);
// '*' matches any run of bytes, everything else itself.
bool GlobMatch(std::string_view pattern, std::string_view text);

enum class TrackerKind { kCreated, kDeleted, kUpdated };
std::string_view TrackerKindName(TrackerKind kind);  // "created", "deleted", "updated"
std::optional<TrackerKind> ParseTrackerKind(std::string_view name);
struct TrackerNotice {
  TrackerKind kind = TrackerKind::kCreated;
  std::string feature;
  std::string data;
  friend bool operator==(const TrackerNotice&, const TrackerNotice&) = default;
};
std::string EncodeTrackerNotice(const TrackerNotice& notice);
Result<TrackerNotice> DecodeTrackerNotice(std::string_view bytes);

// What a store announcement keeps as its name's metadata.
struct StoreAnnouncement {
  int64_t registered_at_us = 0;
  StoreConfig config;
  friend bool operator==(const StoreAnnouncement&, const StoreAnnouncement&) = default;
};
std::string EncodeStoreAnnouncement(const StoreAnnouncement& announcement);
Result<StoreAnnouncement> DecodeStoreAnnouncement(std::string_view bytes);

std::string EncodeEmitterNames(const std::vector<std::string>& names);
Result<std::vector<std::string>> DecodeEmitterNames(std::string_view bytes);

}  // namespace meshbus::eventstore
