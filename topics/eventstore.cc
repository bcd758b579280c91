#include "topics/eventstore.h"

#include <msgpack.hpp>

#include "topics/msgpack_reader.h"

namespace meshbus::eventstore {
namespace {

using Packer = MsgpackPacker;
using Reader = MsgpackReader;

// Event data and metadata, and a tracker notice's data: what one message
// may carry, well below the broker's frame limit.
inline constexpr size_t kMaxPayloadBytes = 1u << 20;
inline constexpr size_t kMaxTextBytes = 1024;  // types, content types, selectors, paths
inline constexpr size_t kMaxTags = 256;
inline constexpr size_t kMaxOptions = 256;
inline constexpr size_t kMaxOptionBytes = 4096;

bool IdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

Status ValidateId(std::string_view what, std::string_view id) {
  if (id.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (id.size() > kMaxIdBytes) {
    return Status::InvalidArgument(std::string(what) + " is longer than " +
                                   std::to_string(kMaxIdBytes) + " bytes");
  }
  for (char c : id) {
    if (!IdChar(c)) {
      return Status::InvalidArgument(std::string(what) + " '" + std::string(id) +
                                     "' has a character other than A-Z a-z 0-9 _ - .");
    }
  }
  return Status::Ok();
}

Status ValidateText(std::string_view what, std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return Status::InvalidArgument(std::string(what) + " is longer than " +
                                   std::to_string(max_bytes) + " bytes");
  }
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument(std::string(what) + " has a control character");
    }
  }
  return Status::Ok();
}

Status ValidateOptions(const std::map<std::string, std::string>& options) {
  if (options.size() > kMaxOptions) {
    return Status::InvalidArgument("more than " + std::to_string(kMaxOptions) + " options");
  }
  for (const auto& [k, v] : options) {
    if (k.empty()) return Status::InvalidArgument("an option has an empty key");
    if (Status s = ValidateText("option key", k, kMaxTextBytes); !s.ok()) return s;
    if (v.size() > kMaxOptionBytes) {
      return Status::InvalidArgument("option '" + k + "' is longer than " +
                                     std::to_string(kMaxOptionBytes) + " bytes");
    }
  }
  return Status::Ok();
}

void PackOptions(Packer& pk, const std::map<std::string, std::string>& options) {
  pk.pack_array(static_cast<uint32_t>(options.size()));
  for (const auto& [k, v] : options) {
    pk.pack_array(2);
    PackStr(pk, k);
    PackStr(pk, v);
  }
}

std::map<std::string, std::string> ReadOptions(Reader& r) {
  std::map<std::string, std::string> out;
  Reader list = r.Array("options");
  if (list.size() > kMaxOptions) list.Fail("has more than " + std::to_string(kMaxOptions));
  while (list.has_more()) {
    Reader kv = list.Array("option");
    std::string k = kv.Str("key", kMaxTextBytes);
    std::string v = kv.Str("value", kMaxOptionBytes);
    kv.End();
    if (kv.ok() && !out.emplace(std::move(k), std::move(v)).second) {
      list.Fail("repeats a key");
    }
  }
  return out;
}

std::string Finish(const msgpack::sbuffer& buf) {
  return std::string(buf.data(), buf.size());
}

// Reads string field `field` as an enum value: `parse` maps a name to it (or
// nullopt); a name it does not know fails the read with `expected`.
template <typename E, typename Parse>
E ReadEnum(Reader& r, const char* field, Parse parse, const char* expected) {
  std::string name = r.Str(field, 32);
  if (!r.ok()) return E{};
  std::optional<E> value = parse(name);
  if (!value) {
    r.Fail(std::string("field '") + field + "' is not " + expected);
    return E{};
  }
  return *value;
}

// Decodes `bytes` as one record: `read` fills it from a Reader; the
// record's own validation runs last, so a decoded record is always valid.
template <typename T, typename Read, typename Validate>
Result<T> DecodeRecord(std::string_view bytes, const char* what, Read read, Validate validate) {
  msgpack::zone zone;
  Result<msgpack::object> o = UnpackBounded(bytes, what, zone, kMaxPayloadBytes, 4);
  if (!o.ok()) return o.status();
  Status st;
  Reader r(&*o, &st, what);
  T value = read(r);
  r.End();
  if (!st.ok()) return st;
  if (Status v = validate(value); !v.ok()) return Status::BadMessage(what + (": " + v.message()));
  return value;
}

}  // namespace

Status ValidateStoreId(std::string_view store_id) {
  return ValidateId("store id", store_id);
}
Status ValidateSubscriptionId(std::string_view subscription_id) {
  if (subscription_id == kAllSubscription) return Status::Ok();
  return ValidateId("subscription id", subscription_id);
}
Status ValidateFeature(std::string_view feature) {
  return ValidateId("feature", feature);
}
Status ValidatePoolSize(uint32_t pool_size) {
  if (pool_size == 0 || pool_size > kMaxPoolSize) {
    return Status::InvalidArgument("pool size " + std::to_string(pool_size) + " is not in 1.." +
                                   std::to_string(kMaxPoolSize));
  }
  return Status::Ok();
}

std::string SubscriptionTopic(std::string_view store_id, std::string_view subscription_id) {
  return std::string(store_id) + ":" + std::string(subscription_id);
}
std::string EmitterName(std::string_view store_id, std::string_view subscription_id, uint32_t n) {
  std::string name = std::string(store_id) + "_" + std::string(subscription_id) + "_emitter";
  if (n >= 2) name += "_" + std::to_string(n);
  return name;
}
std::vector<std::string> EmitterNames(std::string_view store_id, std::string_view subscription_id,
                                      uint32_t pool_size) {
  std::vector<std::string> out;
  for (uint32_t n = 1; n <= pool_size; ++n)
    out.push_back(EmitterName(store_id, subscription_id, n));
  return out;
}
std::string EmitterGroup(std::string_view store_id, std::string_view subscription_id) {
  return SubscriptionTopic(store_id, subscription_id);
}
std::string TrackerGroup(std::string_view store_id, std::string_view feature) {
  return std::string(store_id) + ":" + std::string(feature);
}
std::string LeaderName(std::string_view store_id) {
  return "$es/leader/" + std::string(store_id);
}
std::string SubscriptionKeyPrefix(std::string_view store_id) {
  return "$es/subscriptions/" + std::string(store_id) + "/";
}
std::string SubscriptionKey(std::string_view store_id, std::string_view subscription_id) {
  return SubscriptionKeyPrefix(store_id) + std::string(subscription_id);
}
std::string EmittersKey(std::string_view store_id, std::string_view subscription_id) {
  return "$es/emitters/" + std::string(store_id) + "/" + std::string(subscription_id);
}

std::string StoreNamePrefix() {
  return "$es/stores/";
}
std::string StoreName(std::string_view store_id, std::string_view node) {
  return StoreNamePrefix() + std::string(store_id) + "/" + std::string(node);
}

// ---- events --------------------------------------------------------------------

namespace {
Status ValidateEvent(const Event& e) {
  Status s;
  if (e.event_id.empty()) return Status::InvalidArgument("event id is empty");
  if (e.event_type.empty()) return Status::InvalidArgument("event type is empty");
  if (e.stream_id.empty()) return Status::InvalidArgument("stream id is empty");
  if (s = ValidateText("event id", e.event_id, kMaxTextBytes); !s.ok()) return s;
  if (s = ValidateText("event type", e.event_type, kMaxTextBytes); !s.ok()) return s;
  if (s = ValidateText("stream id", e.stream_id, kMaxTextBytes); !s.ok()) return s;
  if (e.data.size() > kMaxPayloadBytes || e.metadata.size() > kMaxPayloadBytes) {
    return Status::InvalidArgument("event data or metadata is over 1 MiB");
  }
  if (e.tags.size() > kMaxTags) return Status::InvalidArgument("an event has over 256 tags");
  for (const std::string& t : e.tags) {
    if (t.empty()) return Status::InvalidArgument("an event tag is empty");
    if (s = ValidateText("event tag", t, kMaxTextBytes); !s.ok()) return s;
  }
  if (s = ValidateText("data content type", e.data_content_type, kMaxTextBytes); !s.ok()) return s;
  return ValidateText("metadata content type", e.metadata_content_type, kMaxTextBytes);
}
}  // namespace

std::string EncodeEvent(const Event& e) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(11);
  PackStr(pk, e.event_id);
  PackStr(pk, e.event_type);
  PackStr(pk, e.stream_id);
  pk.pack_int64(e.version);
  PackBin(pk, e.data);
  PackBin(pk, e.metadata);
  pk.pack_array(static_cast<uint32_t>(e.tags.size()));
  for (const std::string& t : e.tags) PackStr(pk, t);
  pk.pack_int64(e.timestamp_ms);
  pk.pack_int64(e.epoch_us);
  PackStr(pk, e.data_content_type);
  PackStr(pk, e.metadata_content_type);
  return Finish(buf);
}

Result<Event> DecodeEvent(std::string_view bytes) {
  return DecodeRecord<Event>(
      bytes, "event",
      [](Reader& r) {
        Event e;
        e.event_id = r.Str("event_id", kMaxTextBytes);
        e.event_type = r.Str("event_type", kMaxTextBytes);
        e.stream_id = r.Str("stream_id", kMaxTextBytes);
        e.version = r.I64("version");
        e.data = r.Bin("data", kMaxPayloadBytes);
        e.metadata = r.Bin("metadata", kMaxPayloadBytes);
        Reader tags = r.Array("tags");
        if (tags.size() > kMaxTags) tags.Fail("has more than 256");
        while (tags.has_more()) e.tags.push_back(tags.Str("tag", kMaxTextBytes));
        e.timestamp_ms = r.I64("timestamp_ms");
        e.epoch_us = r.I64("epoch_us");
        e.data_content_type = r.Str("data_content_type", kMaxTextBytes);
        e.metadata_content_type = r.Str("metadata_content_type", kMaxTextBytes);
        return e;
      },
      ValidateEvent);
}

// ---- store configs ---------------------------------------------------------------

std::string_view StoreModeName(StoreMode mode) {
  return mode == StoreMode::kCluster ? "cluster" : "single";
}
std::optional<StoreMode> ParseStoreMode(std::string_view name) {
  if (name == "single") return StoreMode::kSingle;
  if (name == "cluster") return StoreMode::kCluster;
  return std::nullopt;
}

Status ValidateStoreConfig(const StoreConfig& c) {
  if (Status s = ValidateStoreId(c.store_id); !s.ok()) return s;
  if (Status s = ValidateText("data dir", c.data_dir, kMaxTextBytes); !s.ok()) return s;
  for (uint32_t n : {c.writer_pool, c.reader_pool, c.gateway_pool}) {
    if (n > kMaxPoolSize) {
      return Status::InvalidArgument("a worker pool size is over " + std::to_string(kMaxPoolSize));
    }
  }
  return ValidateOptions(c.options);
}

namespace {

void PackStoreConfig(Packer& pk, const StoreConfig& c) {
  pk.pack_array(8);
  PackStr(pk, c.store_id);
  PackStr(pk, c.data_dir);
  PackStr(pk, StoreModeName(c.mode));
  pk.pack_uint64(c.timeout_ms);
  pk.pack_uint32(c.writer_pool);
  pk.pack_uint32(c.reader_pool);
  pk.pack_uint32(c.gateway_pool);
  PackOptions(pk, c.options);
}

StoreConfig ReadStoreConfig(Reader& r) {
  StoreConfig c;
  c.store_id = r.Str("store_id", kMaxIdBytes);
  c.data_dir = r.Str("data_dir", kMaxTextBytes);
  c.mode = ReadEnum<StoreMode>(r, "mode", ParseStoreMode, "single or cluster");
  c.timeout_ms = r.U64("timeout_ms");
  c.writer_pool = r.U32("writer_pool");
  c.reader_pool = r.U32("reader_pool");
  c.gateway_pool = r.U32("gateway_pool");
  c.options = ReadOptions(r);
  return c;
}

}  // namespace

std::string EncodeStoreConfig(const StoreConfig& c) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  PackStoreConfig(pk, c);
  return Finish(buf);
}

Result<StoreConfig> DecodeStoreConfig(std::string_view bytes) {
  return DecodeRecord<StoreConfig>(bytes, "store config", ReadStoreConfig, ValidateStoreConfig);
}

std::string EncodeStoreAnnouncement(const StoreAnnouncement& a) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(2);
  pk.pack_int64(a.registered_at_us);
  PackStoreConfig(pk, a.config);
  return Finish(buf);
}

Result<StoreAnnouncement> DecodeStoreAnnouncement(std::string_view bytes) {
  return DecodeRecord<StoreAnnouncement>(
      bytes, "store announcement",
      [](Reader& r) {
        StoreAnnouncement a;
        a.registered_at_us = r.I64("registered_at_us");
        Reader c = r.Array("config");
        a.config = ReadStoreConfig(c);
        c.End();
        return a;
      },
      [](const StoreAnnouncement& a) { return ValidateStoreConfig(a.config); });
}

// ---- subscriptions ---------------------------------------------------------------

std::string_view SubscriptionTypeName(SubscriptionType type) {
  switch (type) {
    case SubscriptionType::kStream:
      return "stream";
    case SubscriptionType::kEventType:
      return "event_type";
    case SubscriptionType::kEventPattern:
      return "event_pattern";
    case SubscriptionType::kTags:
      return "tags";
  }
  return "stream";
}
std::optional<SubscriptionType> ParseSubscriptionType(std::string_view name) {
  for (SubscriptionType t : {SubscriptionType::kStream, SubscriptionType::kEventType,
                             SubscriptionType::kEventPattern, SubscriptionType::kTags}) {
    if (SubscriptionTypeName(t) == name) return t;
  }
  return std::nullopt;
}

Subscription DefaultSubscription() {
  Subscription s;
  s.id = std::string(kAllSubscription);
  s.type = SubscriptionType::kStream;
  s.selector = std::string(kAllSubscription);
  s.name = std::string(kDefaultSubscriptionName);
  s.pool_size = 1;
  return s;
}

Status ValidateSubscription(const Subscription& s) {
  if (Status v = ValidateSubscriptionId(s.id); !v.ok()) return v;
  if (s.id != kAllSubscription && s.selector.empty()) {
    return Status::InvalidArgument("subscription '" + s.id + "' has an empty selector");
  }
  if (Status v = ValidateText("selector", s.selector, kMaxTextBytes); !v.ok()) return v;
  if (Status v = ValidateText("subscription name", s.name, kMaxTextBytes); !v.ok()) return v;
  if (Status v = ValidatePoolSize(s.pool_size); !v.ok()) return v;
  return ValidateOptions(s.options);
}

std::string EncodeSubscription(const Subscription& s) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(7);
  PackStr(pk, s.id);
  PackStr(pk, SubscriptionTypeName(s.type));
  PackStr(pk, s.selector);
  PackStr(pk, s.name);
  pk.pack_uint32(s.pool_size);
  if (s.checkpoint) {
    pk.pack_uint64(*s.checkpoint);
  } else {
    pk.pack_nil();
  }
  PackOptions(pk, s.options);
  return Finish(buf);
}

Result<Subscription> DecodeSubscription(std::string_view bytes) {
  return DecodeRecord<Subscription>(
      bytes, "subscription",
      [](Reader& r) {
        Subscription s;
        s.id = r.Str("id", kMaxIdBytes);
        s.type = ReadEnum<SubscriptionType>(r, "type", ParseSubscriptionType,
                                            "stream, event_type, event_pattern or tags");
        s.selector = r.Str("selector", kMaxTextBytes);
        s.name = r.Str("name", kMaxTextBytes);
        s.pool_size = r.U32("pool_size");
        if (r.PeekNil()) {
          r.Next("checkpoint");
        } else {
          s.checkpoint = r.U64("checkpoint");
        }
        s.options = ReadOptions(r);
        return s;
      },
      ValidateSubscription);
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative, with one backtrack point: linear in practice, never
  // exponential, whatever the pattern.
  size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool Selects(const Subscription& s, const Event& e) {
  if (s.id == kAllSubscription || s.selector == kAllSubscription) return true;
  switch (s.type) {
    case SubscriptionType::kStream:
      return e.stream_id == s.selector;
    case SubscriptionType::kEventType:
      return e.event_type == s.selector;
    case SubscriptionType::kEventPattern:
      return GlobMatch(s.selector, e.stream_id);
    case SubscriptionType::kTags: {
      std::string_view rest = s.selector;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view tag = rest.substr(0, comma);
        for (const std::string& t : e.tags) {
          if (t == tag) return true;
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      return false;
    }
  }
  return false;
}

// ---- tracker notices and emitter names ---------------------------------------------

std::string_view TrackerKindName(TrackerKind kind) {
  switch (kind) {
    case TrackerKind::kCreated:
      return "created";
    case TrackerKind::kDeleted:
      return "deleted";
    case TrackerKind::kUpdated:
      return "updated";
  }
  return "created";
}

std::optional<TrackerKind> ParseTrackerKind(std::string_view name) {
  for (TrackerKind k : {TrackerKind::kCreated, TrackerKind::kDeleted, TrackerKind::kUpdated}) {
    if (name == TrackerKindName(k)) return k;
  }
  return std::nullopt;
}

std::string EncodeTrackerNotice(const TrackerNotice& n) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(3);
  PackStr(pk, TrackerKindName(n.kind));
  PackStr(pk, n.feature);
  PackBin(pk, n.data);
  return Finish(buf);
}

Result<TrackerNotice> DecodeTrackerNotice(std::string_view bytes) {
  return DecodeRecord<TrackerNotice>(
      bytes, "tracker notice",
      [](Reader& r) {
        TrackerNotice n;
        n.kind = ReadEnum<TrackerKind>(r, "kind", ParseTrackerKind, "created, deleted or updated");
        n.feature = r.Str("feature", kMaxIdBytes);
        n.data = r.Bin("data", kMaxPayloadBytes);
        return n;
      },
      [](const TrackerNotice& n) { return ValidateFeature(n.feature); });
}

std::string EncodeEmitterNames(const std::vector<std::string>& names) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(static_cast<uint32_t>(names.size()));
  for (const std::string& n : names) PackStr(pk, n);
  return Finish(buf);
}

Result<std::vector<std::string>> DecodeEmitterNames(std::string_view bytes) {
  return DecodeRecord<std::vector<std::string>>(
      bytes, "emitter names",
      [](Reader& r) {
        std::vector<std::string> names;
        if (r.size() > kMaxPoolSize) r.Fail("has more than " + std::to_string(kMaxPoolSize));
        while (r.has_more()) names.push_back(r.Str("name", 255));
        return names;
      },
      [](const std::vector<std::string>& names) {
        for (const std::string& n : names) {
          if (n.empty()) return Status::InvalidArgument("an emitter name is empty");
        }
        return Status::Ok();
      });
}

}  // namespace meshbus::eventstore
