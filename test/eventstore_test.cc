// The event-store vocabulary (topics/eventstore.h): ids, topics, emitter
// names, group and registry keys, and the records' codecs. Table-driven.
#include "topics/eventstore.h"

#include <gtest/gtest.h>

#include <functional>

#include <msgpack.hpp>

#include "topics/msgpack_reader.h"

namespace meshbus::eventstore {
namespace {

TEST(EventStoreNamesTest, TopicsEmitterNamesAndKeys) {
  struct Case {
    std::string got, want;
  };
  const Case cases[] = {
      {SubscriptionTopic("orders", "$all"), "orders:$all"},
      {SubscriptionTopic("orders", "by-customer"), "orders:by-customer"},
      {EmitterName("orders", "$all", 1), "orders_$all_emitter"},
      {EmitterName("orders", "$all", 2), "orders_$all_emitter_2"},
      {EmitterName("orders", "sub1", 10), "orders_sub1_emitter_10"},
      {EmitterGroup("orders", "sub1"), "orders:sub1"},
      {TrackerGroup("orders", "subscriptions"), "orders:subscriptions"},
      {LeaderName("orders"), "$es/leader/orders"},
      {SubscriptionKey("orders", "$all"), "$es/subscriptions/orders/$all"},
      {EmittersKey("orders", "sub1"), "$es/emitters/orders/sub1"},
      {StoreName("orders", "n1"), "$es/stores/orders/n1"},
      {StoreNamePrefix(), "$es/stores/"},
  };
  for (const Case& c : cases) EXPECT_EQ(c.got, c.want);
  EXPECT_EQ(EmitterNames("s", "x", 3),
            (std::vector<std::string>{"s_x_emitter", "s_x_emitter_2", "s_x_emitter_3"}));
  EXPECT_TRUE(EmitterNames("s", "x", 0).empty());
  // Distinct stores or subscriptions never share a key or group: ':' and
  // '/' cannot occur in an id.
  EXPECT_NE(SubscriptionKey("a", "b.c"), SubscriptionKey("a.b", "c"));
}

TEST(EventStoreNamesTest, IdValidation) {
  struct Case {
    const char* what;
    Status status;
    bool ok;
  };
  std::string longest(kMaxIdBytes, 'a');
  const Case cases[] = {
      {"store", ValidateStoreId("orders"), true},
      {"store with _ - .", ValidateStoreId("my_store-1.v2"), true},
      {"store longest", ValidateStoreId(longest), true},
      {"store too long", ValidateStoreId(longest + "a"), false},
      {"store empty", ValidateStoreId(""), false},
      {"store with ':'", ValidateStoreId("a:b"), false},
      {"store with '/'", ValidateStoreId("a/b"), false},
      {"store with space", ValidateStoreId("a b"), false},
      {"store with control", ValidateStoreId("a\nb"), false},
      {"store $all", ValidateStoreId("$all"), false},
      {"subscription $all", ValidateSubscriptionId("$all"), true},
      {"subscription", ValidateSubscriptionId("by-stream"), true},
      {"subscription $other", ValidateSubscriptionId("$other"), false},
      {"subscription empty", ValidateSubscriptionId(""), false},
      {"subscription with ':'", ValidateSubscriptionId("a:b"), false},
      {"feature", ValidateFeature("subscriptions"), true},
      {"feature other", ValidateFeature("projections"), true},
      {"feature empty", ValidateFeature(""), false},
      {"pool 1", ValidatePoolSize(1), true},
      {"pool max", ValidatePoolSize(kMaxPoolSize), true},
      {"pool 0", ValidatePoolSize(0), false},
      {"pool over", ValidatePoolSize(kMaxPoolSize + 1), false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.status.ok(), c.ok) << c.what << ": " << c.status.ToString();
    if (!c.ok) {
      EXPECT_EQ(c.status.code(), Code::kInvalidArgument) << c.what;
      EXPECT_FALSE(c.status.message().empty()) << c.what;
    }
  }
}

Event SampleEvent() {
  Event e;
  e.event_id = "e-1";
  e.event_type = "OrderPlaced";
  e.stream_id = "orders-17";
  e.version = 3;
  e.data = std::string("\x00\x01{\"qty\":2}", 11);
  e.metadata = "{\"by\":\"web\"}";
  e.tags = {"eu", "vip"};
  e.timestamp_ms = 1764662400000;
  e.epoch_us = 1764662400000123;
  e.data_content_type = "application/json";
  return e;
}

Subscription SampleSubscription() {
  Subscription s;
  s.id = "by-type";
  s.type = SubscriptionType::kEventType;
  s.selector = "OrderPlaced";
  s.name = "placed orders";
  s.pool_size = 3;
  s.checkpoint = 42;
  s.options = {{"start", "origin"}};
  return s;
}

TEST(EventStoreRecordsTest, RoundTrips) {
  Event e = SampleEvent();
  Result<Event> de = DecodeEvent(EncodeEvent(e));
  ASSERT_TRUE(de.ok()) << de.status().ToString();
  EXPECT_EQ(*de, e);
  Event negative = e;
  negative.version = -1;  // "no stream yet" in reckon_db's conventions
  ASSERT_TRUE(DecodeEvent(EncodeEvent(negative)).ok());
  EXPECT_EQ(DecodeEvent(EncodeEvent(negative))->version, -1);

  StoreConfig c;
  c.store_id = "orders";
  c.data_dir = "/var/lib/orders";
  c.mode = StoreMode::kCluster;
  c.timeout_ms = 7000;
  c.writer_pool = 4;
  c.options = {{"a", "1"}, {"b", ""}};
  Result<StoreConfig> dc = DecodeStoreConfig(EncodeStoreConfig(c));
  ASSERT_TRUE(dc.ok()) << dc.status().ToString();
  EXPECT_EQ(*dc, c);

  StoreAnnouncement a{1700000000123456, c};
  Result<StoreAnnouncement> da = DecodeStoreAnnouncement(EncodeStoreAnnouncement(a));
  ASSERT_TRUE(da.ok()) << da.status().ToString();
  EXPECT_EQ(*da, a);

  for (Subscription s : {SampleSubscription(), DefaultSubscription()}) {
    Result<Subscription> ds = DecodeSubscription(EncodeSubscription(s));
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    EXPECT_EQ(*ds, s);
  }
  EXPECT_FALSE(DefaultSubscription().checkpoint.has_value());

  TrackerNotice n{TrackerKind::kUpdated, "subscriptions", EncodeSubscription(SampleSubscription())};
  Result<TrackerNotice> dn = DecodeTrackerNotice(EncodeTrackerNotice(n));
  ASSERT_TRUE(dn.ok()) << dn.status().ToString();
  EXPECT_EQ(*dn, n);

  std::vector<std::string> names = EmitterNames("orders", "$all", 4);
  Result<std::vector<std::string>> dnames = DecodeEmitterNames(EncodeEmitterNames(names));
  ASSERT_TRUE(dnames.ok());
  EXPECT_EQ(*dnames, names);
}

// Every truncation of every record is refused, and so is any single-byte
// change that does not decode to a valid record (it may decode: then it must
// re-encode to the same bytes).
TEST(EventStoreRecordsTest, TruncatedAndMutatedRecordsAreRefusedOrExact) {
  StoreConfig c;
  c.store_id = "s1";
  c.options = {{"k", "v"}};
  struct Case {
    const char* what;
    std::string bytes;
    std::function<Result<std::string>(std::string_view)> reencode;
  };
  auto via = [](auto decode, auto encode) {
    return [decode, encode](std::string_view b) -> Result<std::string> {
      auto d = decode(b);
      if (!d.ok()) return d.status();
      return encode(*d);
    };
  };
  const Case cases[] = {
      {"event", EncodeEvent(SampleEvent()), via(DecodeEvent, EncodeEvent)},
      {"config", EncodeStoreConfig(c), via(DecodeStoreConfig, EncodeStoreConfig)},
      {"announcement", EncodeStoreAnnouncement({42, c}),
       via(DecodeStoreAnnouncement, EncodeStoreAnnouncement)},
      {"subscription", EncodeSubscription(SampleSubscription()),
       via(DecodeSubscription, EncodeSubscription)},
      {"notice", EncodeTrackerNotice({TrackerKind::kCreated, "streams", "x"}),
       via(DecodeTrackerNotice, EncodeTrackerNotice)},
  };
  for (const Case& k : cases) {
    for (size_t n = 0; n < k.bytes.size(); ++n) {
      EXPECT_FALSE(k.reencode(k.bytes.substr(0, n)).ok()) << k.what << " cut at " << n;
    }
    EXPECT_FALSE(k.reencode(k.bytes + "x").ok()) << k.what << " with a trailing byte";
    for (size_t i = 0; i < k.bytes.size(); ++i) {
      for (int delta : {1, 0x20, 0x80}) {
        std::string m = k.bytes;
        m[i] = static_cast<char>(m[i] + delta);
        Result<std::string> r = k.reencode(m);
        if (r.ok()) {
          EXPECT_EQ(*r, m) << k.what << " byte " << i;
        }
      }
    }
  }
}

TEST(EventStoreRecordsTest, InvalidRecordsAreRefused) {
  auto encode_raw = [](auto pack) {
    msgpack::sbuffer buf;
    MsgpackPacker pk(buf);
    pack(pk);
    return std::string(buf.data(), buf.size());
  };
  Subscription bad_pool = SampleSubscription();
  bad_pool.pool_size = 0;
  Subscription bad_id = SampleSubscription();
  bad_id.id = "a:b";
  Subscription no_selector = SampleSubscription();
  no_selector.selector = "";
  StoreConfig bad_store;
  bad_store.store_id = "";
  Event no_type = SampleEvent();
  no_type.event_type = "";
  struct Case {
    const char* what;
    Status status;
  };
  const Case cases[] = {
      {"pool size 0", DecodeSubscription(EncodeSubscription(bad_pool)).status()},
      {"subscription id with ':'", DecodeSubscription(EncodeSubscription(bad_id)).status()},
      {"no selector", DecodeSubscription(EncodeSubscription(no_selector)).status()},
      {"empty store id", DecodeStoreConfig(EncodeStoreConfig(bad_store)).status()},
      {"announcement of an empty store id",
       DecodeStoreAnnouncement(EncodeStoreAnnouncement({1, bad_store})).status()},
      {"announcement without a config", DecodeStoreAnnouncement(encode_raw([](MsgpackPacker& pk) {
                                          pk.pack_array(1);
                                          pk.pack_int64(1);
                                        })).status()},
      {"event without type", DecodeEvent(EncodeEvent(no_type)).status()},
      {"empty bytes", DecodeEvent("").status()},
      {"not an array",
       DecodeEvent(encode_raw([](MsgpackPacker& pk) { pk.pack_uint8(1); })).status()},
      {"a map", DecodeSubscription(encode_raw([](MsgpackPacker& pk) { pk.pack_map(0); })).status()},
      {"unknown mode", DecodeStoreConfig(encode_raw([](MsgpackPacker& pk) {
                         pk.pack_array(8);
                         PackStr(pk, "s");
                         PackStr(pk, "");
                         PackStr(pk, "triple");
                         pk.pack_uint8(1);
                         pk.pack_uint8(1);
                         pk.pack_uint8(1);
                         pk.pack_uint8(1);
                         pk.pack_array(0);
                       })).status()},
      {"repeated option", DecodeStoreConfig(encode_raw([](MsgpackPacker& pk) {
                            pk.pack_array(8);
                            PackStr(pk, "s");
                            PackStr(pk, "");
                            PackStr(pk, "single");
                            pk.pack_uint8(1);
                            pk.pack_uint8(1);
                            pk.pack_uint8(1);
                            pk.pack_uint8(1);
                            pk.pack_array(2);
                            for (int i = 0; i < 2; ++i) {
                              pk.pack_array(2);
                              PackStr(pk, "k");
                              PackStr(pk, "v");
                            }
                          })).status()},
      {"unknown tracker kind", DecodeTrackerNotice(encode_raw([](MsgpackPacker& pk) {
                                 pk.pack_array(3);
                                 PackStr(pk, "moved");
                                 PackStr(pk, "streams");
                                 PackBin(pk, "");
                               })).status()},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.status.code(), Code::kBadMessage) << c.what << ": " << c.status.ToString();
  }
}

TEST(EventStoreSubscriptionTest, SelectsByStreamTypePatternAndTags) {
  Event e = SampleEvent();  // stream orders-17, type OrderPlaced, tags eu, vip
  auto sub = [](SubscriptionType t, std::string selector, std::string id = "s") {
    Subscription s;
    s.id = std::move(id);
    s.type = t;
    s.selector = std::move(selector);
    return s;
  };
  struct Case {
    const char* what;
    Subscription s;
    bool selects;
  };
  const Case cases[] = {
      {"$all", DefaultSubscription(), true},
      {"stream, same", sub(SubscriptionType::kStream, "orders-17"), true},
      {"stream, other", sub(SubscriptionType::kStream, "orders-1"), false},
      {"stream, a prefix is not the stream", sub(SubscriptionType::kStream, "orders"), false},
      {"type, same", sub(SubscriptionType::kEventType, "OrderPlaced"), true},
      {"type, other", sub(SubscriptionType::kEventType, "OrderShipped"), false},
      {"pattern orders-*", sub(SubscriptionType::kEventPattern, "orders-*"), true},
      {"pattern *-17", sub(SubscriptionType::kEventPattern, "*-17"), true},
      {"pattern o*s-1*", sub(SubscriptionType::kEventPattern, "o*s-1*"), true},
      {"pattern invoices-*", sub(SubscriptionType::kEventPattern, "invoices-*"), false},
      {"pattern without wildcard", sub(SubscriptionType::kEventPattern, "orders-1"), false},
      {"tags, one of them", sub(SubscriptionType::kTags, "us,vip"), true},
      {"tags, none", sub(SubscriptionType::kTags, "us,apac"), false},
  };
  for (const Case& c : cases) EXPECT_EQ(Selects(c.s, e), c.selects) << c.what;
}

TEST(EventStoreSubscriptionTest, GlobMatch) {
  static const std::string kSixtyAs(60, 'a');
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  };
  const Case cases[] = {
      {"", "", true},
      {"", "a", false},
      {"*", "", true},
      {"*", "abc", true},
      {"a*", "abc", true},
      {"a*c", "abc", true},
      {"a*c", "abd", false},
      {"*b*", "abc", true},
      {"a**c", "ac", true},
      {"abc", "abc", true},
      {"abc", "abcd", false},
      {"*aab", "aaaab", true},
      {"a*a*a*a*b", kSixtyAs.c_str(), false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.text), c.match) << c.pattern << " ~ " << c.text;
  }
}

}  // namespace
}  // namespace meshbus::eventstore
