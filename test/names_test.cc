// Tests of topics/names.h: validation of node names, scopes, groups and
// endpoints, and the text form of member ids.

#include "topics/names.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace meshbus {
namespace {

struct ValidationCase {
  const char* label;
  std::string input;
  bool valid;
};

std::string WithByte(std::string prefix, char c, std::string suffix) {
  return prefix + std::string(1, c) + suffix;
}

// ---- node names ------------------------------------------------------------

TEST(NamesTest, ValidateNodeName) {
  const ValidationCase kCases[] = {
      {"simple", "n1", true},
      {"single char", "a", true},
      {"all allowed kinds", "Node_01-east", true},
      {"digits only", "12345", true},
      {"max length", std::string(kMaxNodeNameBytes, 'x'), true},
      {"empty", "", false},
      {"over length", std::string(kMaxNodeNameBytes + 1, 'x'), false},
      {"dot", "n1.east", false},
      {"space", "n 1", false},
      {"slash", "n/1", false},
      {"colon", "n:1", false},
      {"at", "n@1", false},
      {"newline", "n1\n", false},
      {"tab", "n\t1", false},
      {"NUL inside", WithByte("n", '\0', "1"), false},
      {"DEL", WithByte("n", '\x7f', "1"), false},
      {"UTF-8", "n\xc3\xa9", false},
  };
  for (const ValidationCase& c : kCases) {
    Status s = ValidateNodeName(c.input);
    EXPECT_EQ(s.ok(), c.valid) << c.label << ": " << s.ToString();
    if (!c.valid) {
      EXPECT_EQ(s.code(), Code::kInvalidArgument) << c.label;
    }
  }
}

// ---- scopes and groups -----------------------------------------------------

// Scopes and groups share their rules; each case runs against both.
TEST(NamesTest, ValidateScopeAndGroup) {
  static_assert(kMaxScopeBytes == kMaxGroupBytes);
  const ValidationCase kCases[] = {
      {"simple", "orders", true},
      {"single char", "x", true},
      {"punctuation and spaces", "orders:$all / v2.1", true},
      {"dots", "a.b.c", true},
      {"UTF-8", "commandes-\xc3\xa9t\xc3\xa9", true},
      {"tilde (0x7e)", "~", true},
      {"max length", std::string(kMaxScopeBytes, 'g'), true},
      {"empty", "", false},
      {"over length", std::string(kMaxScopeBytes + 1, 'g'), false},
      {"NUL", WithByte("a", '\0', "b"), false},
      {"newline", "a\nb", false},
      {"carriage return", "ab\r", false},
      {"tab", "\tab", false},
      {"escape", "a\x1b[31m", false},
      {"0x1f", WithByte("a", '\x1f', ""), false},
      {"DEL", WithByte("a", '\x7f', ""), false},
  };
  for (const ValidationCase& c : kCases) {
    Status scope = ValidateScope(c.input);
    Status group = ValidateGroup(c.input);
    EXPECT_EQ(scope.ok(), c.valid) << "scope " << c.label << ": " << scope.ToString();
    EXPECT_EQ(group.ok(), c.valid) << "group " << c.label << ": " << group.ToString();
    if (!c.valid) {
      EXPECT_EQ(scope.code(), Code::kInvalidArgument) << c.label;
      EXPECT_EQ(group.code(), Code::kInvalidArgument) << c.label;
    }
  }
}

TEST(NamesTest, ValidationMessagesNameTheProblem) {
  EXPECT_EQ(ValidateScope("").ToString(), "invalid_argument: scope is empty");
  EXPECT_EQ(ValidateGroup("").ToString(), "invalid_argument: group is empty");
  EXPECT_EQ(ValidateGroup(std::string(256, 'g')).ToString(),
            "invalid_argument: group is longer than 255 bytes");
  EXPECT_EQ(ValidateScope("a\nb").ToString(),
            "invalid_argument: scope contains a control character");
  EXPECT_EQ(ValidateNodeName("").ToString(), "invalid_argument: node name is empty");
}

// ---- endpoints -------------------------------------------------------------

TEST(NamesTest, ValidateEndpoint) {
  const ValidationCase kCases[] = {
      {"tcp", "tcp://127.0.0.1:5555", true},
      {"tcp wildcard", "tcp://*:5555", true},
      {"tcp host name", "tcp://node-1.example:7000", true},
      {"ipc", "ipc:///tmp/meshbus/n1.sock", true},
      {"inproc", "inproc://control", true},
      {"max length", "tcp://" + std::string(kMaxEndpointBytes - 6, 'h'), true},
      {"empty", "", false},
      {"over length", "tcp://" + std::string(kMaxEndpointBytes - 5, 'h'), false},
      {"scheme only tcp", "tcp://", false},
      {"scheme only ipc", "ipc://", false},
      {"scheme only inproc", "inproc://", false},
      {"no scheme", "127.0.0.1:5555", false},
      {"http", "http://127.0.0.1:5555", false},
      {"udp", "udp://127.0.0.1:5555", false},
      {"pgm", "pgm://eth0;239.192.1.1:5555", false},
      {"upper case scheme", "TCP://127.0.0.1:5555", false},
      {"single slash", "tcp:/127.0.0.1:5555", false},
      {"leading space", " tcp://127.0.0.1:5555", false},
      {"control char", "tcp://127.0.0.1:5555\n", false},
      {"NUL", WithByte("tcp://a", '\0', "b"), false},
  };
  for (const ValidationCase& c : kCases) {
    Status s = ValidateEndpoint(c.input);
    EXPECT_EQ(s.ok(), c.valid) << c.label << ": " << s.ToString();
    if (!c.valid) {
      EXPECT_EQ(s.code(), Code::kInvalidArgument) << c.label;
    }
  }
}

// ---- member ids ------------------------------------------------------------

TEST(NamesTest, IncarnationHex) {
  EXPECT_EQ(IncarnationHex(0), "0");
  EXPECT_EQ(IncarnationHex(0x5f3a9c), "5f3a9c");
  EXPECT_EQ(IncarnationHex(UINT64_MAX), "ffffffffffffffff");
}

TEST(NamesTest, MemberIdToString) {
  EXPECT_EQ((MemberId{"n1", 0x5f3a9c, 17}).ToString(), "n1.5f3a9c.17");
  EXPECT_EQ((MemberId{"n1", 0x18a3f5b2c9d4e, 17}).ToString(), "n1.18a3f5b2c9d4e.17");
  EXPECT_EQ((MemberId{"a", 0, 0}).ToString(), "a.0.0");
  EXPECT_EQ((MemberId{"n-2_x", UINT64_MAX, UINT64_MAX}).ToString(),
            "n-2_x.ffffffffffffffff.18446744073709551615");
}

TEST(NamesTest, MemberIdRoundTrip) {
  const MemberId kIds[] = {
      {"n1", 0x5f3a9c, 17},
      {"a", 0, 0},
      {"A", 1, 1},
      {"node_with-dashes", 0xdeadbeef, 4242},
      {std::string(kMaxNodeNameBytes, 'z'), UINT64_MAX, UINT64_MAX},
      {"n2", 0x8000000000000000ull, 1ull << 63},
  };
  for (const MemberId& id : kIds) {
    std::string text = id.ToString();
    std::optional<MemberId> back = MemberId::Parse(text);
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_EQ(*back, id) << text;
    EXPECT_EQ(back->ToString(), text);
  }
}

TEST(NamesTest, MemberIdParseFields) {
  std::optional<MemberId> id = MemberId::Parse("n7.ab12.903");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->node, "n7");
  EXPECT_EQ(id->incarnation, 0xab12u);
  EXPECT_EQ(id->session, 903u);
}

TEST(NamesTest, MemberIdParseRejectsMalformed) {
  const struct {
    const char* label;
    std::string text;
  } kCases[] = {
      {"empty", ""},
      {"node only", "n1"},
      {"missing session", "n1.5f3a9c"},
      {"extra dot at the end", "n1.5f3a9c.17."},
      {"four parts", "n1.5f3a9c.17.3"},
      {"double dot", "n1..5f3a9c.17"},
      {"only dots", ".."},
      {"empty node", ".5f3a9c.17"},
      {"empty incarnation", "n1..17"},
      {"empty session", "n1.5f3a9c."},
      {"non-hex incarnation", "n1.5g3a9c.17"},
      {"incarnation with 0x", "n1.0x5f.17"},
      {"negative incarnation", "n1.-5f.17"},
      {"plus incarnation", "n1.+5f.17"},
      {"incarnation overflows 64 bits", "n1.10000000000000000.17"},
      {"hex session", "n1.5f3a9c.1a"},
      {"negative session", "n1.5f3a9c.-17"},
      {"session overflows 64 bits", "n1.5f3a9c.18446744073709551616"},
      {"space in session", "n1.5f3a9c.1 7"},
      {"trailing junk", "n1.5f3a9c.17x"},
      {"trailing space", "n1.5f3a9c.17 "},
      {"trailing newline", "n1.5f3a9c.17\n"},
      {"leading space in incarnation", "n1. 5f.17"},
      {"bad char in node", "n/1.5f3a9c.17"},
      {"space in node", "n 1.5f3a9c.17"},
      {"node over length", std::string(kMaxNodeNameBytes + 1, 'n') + ".1.1"},
      {"NUL in node", WithByte("n", '\0', "1.5f.17")},
  };
  for (const auto& c : kCases) {
    EXPECT_FALSE(MemberId::Parse(c.text).has_value()) << c.label << ": '" << c.text << "'";
  }
}

TEST(NamesTest, MemberIdOrdering) {
  MemberId a{"n1", 5, 2}, b{"n1", 5, 10}, c{"n1", 6, 1}, d{"n2", 1, 1};
  EXPECT_LT(a, b);  // session compared numerically, not as text
  EXPECT_LT(b, c);
  EXPECT_LT(c, d);
  EXPECT_EQ(a, (MemberId{"n1", 5, 2}));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace meshbus
