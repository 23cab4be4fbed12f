// The interpreter feature by feature: a table of template -> expected output (each row is
// also rendered by @huggingface/jinja when tests/node is installed, so the table cannot drift
// from the reference), error messages with template name and line, and hostile templates that
// must fail cleanly within the render limits.
#include "coordinator/chat/template.h"

#include <string>
#include <vector>

#include "boost/json.hpp"
#include "coordinator/chat/chat_template.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/node_reference.h"
#include "tests/testing/shared_data.h"

namespace strata::chat {
namespace {

using ::testing::HasSubstr;

constexpr char kContext[] = R"({
  "s": "  Hello World  ", "n": 7, "f": 2.5, "b": true, "nul": null,
  "xs": [3, 1, 2], "names": ["b", "A", "c"],
  "d": {"k": "v", "z": 1, "a": [1, 2]},
  "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
           {"role": "user", "content": "ok"}],
  "tool": {"name": "f", "args": {"x": 1, "y": "é"}}
})";

struct Case {
  const char* tmpl;
  const char* expected;
};

const Case kCases[] = {
    // Output, literals, whitespace control, comments.
    {"a{{ 'b' }}c", "abc"},
    {"{{ 1 }} {{ 1.0 }} {{ 2.50 }} {{ -3 }} {{ true }} {{ none }}|", "1 1.0 2.5 -3 true |"},
    {"{{ [1, 'a', none] }} {{ {'k': [1.5, true]} }}", "[1, \"a\", null] {\"k\": [1.5, true]}"},
    {"x  {%- if true -%}  y  {%- endif -%}  z", "xyz"},
    {"a {#- c -#} b{# note #}", "ab"},
    {"  {% if true %}\n  yes\n  {% endif %}\nend\n", "  yes\nend"},
    {"{{ 'a\\tb\\n' ~ \"q\\\"\" ~ '\\x41\\u00e9' }}", "a\tb\nq\"Aé"},
    {"{{ 'con' 'cat' }}", "concat"},
    // Operators.
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
     "3 -4 1 3.5 1024 0.5"},
    {"{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 1.5 + 1 }} {{ 'a' + 1 }} {{ 'n=' ~ 1.0 }}",
     "7 9 2.5 a1 n=1"},
    {"{{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 2 < 3 }} {{ none == undefined_var }} {{ 1 == true }}",
     "true true true true true"},
    {"{{ 'b' in 'abc' }} {{ 2 in xs }} {{ 'k' in d }} {{ 5 not in xs }} {{ 'q' in nothing }}",
     "true true true true false"},
    {"{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not [] }} {{ [] or 'empty' }}", "x y true empty"},
    {"{{ xs + [4] }} {{ 'yes' if b else 'no' }} {{ 'no' if not b else 'yes' }}",
     "[3, 1, 2, 4] yes yes"},
    // Member access, slicing.
    {"{{ d.k }}{{ d['z'] }}{{ xs[0] }}{{ xs[-1] }}{{ xs.1 }}{{ d.missing }}{{ s[2] }}",
     "v1321H"},
    {"{{ xs[1:] }} {{ xs[::-1] }} {{ xs[:-1] }} {{ 'hello'[1:3] }} {{ 'abc'[::-1] }}",
     "[1, 2] [2, 1, 3] [3, 1] el cba"},
    {"{{ d.get('k') }} {{ d.get('q', 'dflt') }} {{ d.get('q') }} {{ d.items() | length }}",
     "v dflt  3"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", "k=v;z=1;a=[1, 2];"},
    {"{{ d.keys() }} {{ d.values() | length }}", "[\"k\", \"z\", \"a\"] 3"},
    // Small dicts are scanned, large ones indexed: both keep first-insertion order on overwrite.
    {"{% set e = {'a': 1, 'b': 2, 'a': 3} %}{{ e.a }}{{ e | length }}{{ e.keys() | first }}",
     "32a"},
    {"{% set e = {'k0': 0, 'k1': 1, 'k2': 2, 'k3': 3, 'k4': 4, 'k5': 5, 'k6': 6, 'k7': 7, "
     "'k8': 8, 'k9': 9, 'k10': 10, 'k11': 11, 'k12': 12, 'k13': 13, 'k14': 14, 'k15': 15, "
     "'k16': 16, 'k17': 17, 'k18': 18, 'k19': 19, 'k3': 33} %}"
     "{{ e.k3 }} {{ e['k19'] }} {{ e.k0 }} {{ e | length }} [{{ e.k20 }}] "
     "{% for k in e %}{% if loop.index0 == 3 %}{{ k }}={{ e[k] }}{% endif %}{% endfor %}",
     "33 19 0 20 [] k3=33"},
    // String methods.
    {"[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip('x') }}]",
     "[Hello World][Hello World  ][  Hello World]"},
    {"{{ s.upper() }}{{ 'Ab'.lower() }}{{ 'a b_c'.title() }}{{ 'abc'.capitalize() }}",
     "  HELLO WORLD  abA B_cAbc"},
    {"{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a-b-c'.split('-', 1) }}",
     "[\"a\", \"b\", \"\", \"c\"] [\"a\", \"b\"] [\"a\", \"b-c\"]"},
    {"{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'aaa'.replace('a', 'b', 2) }}",
     "true true bba"},
    {"{{ 'héllo'.length }} {{ '😀'|length }}", "5 2"},
    // Filters.
    {"[{{ s|trim }}] {{ s|trim|upper }} {{ 'x'|capitalize }} {{ 'a b'|title }} {{ 'AB'|lower }}",
     "[Hello World] HELLO WORLD X A B ab"},
    {"{{ xs|length }} {{ xs|first }} {{ xs|last }} {{ xs|sort }} {{ xs|reverse }} {{ names|sort }}",
     "3 3 2 [1, 2, 3] [2, 1, 3] [\"A\", \"b\", \"c\"]"},
    {"{{ xs|join(', ') }} {{ names|join }} {{ 'abc'|join('-') }} {{ [1, none, 'x']|join('|') }}",
     "3, 1, 2 bAc a-b-c 1||x"},
    {"{{ tool|tojson }}", "{\"name\": \"f\", \"args\": {\"x\": 1, \"y\": \"é\"}}"},
    {"{{ tool|tojson(indent=2) }}",
     "{\n  \"name\": \"f\",\n  \"args\": {\n    \"x\": 1,\n    \"y\": \"é\"\n  }\n}"},
    {"{{ tool.args|tojson(ensure_ascii=true) }} {{ [] | tojson(indent=4) }} {{ 'a\"b' | tojson }}",
     "{\"x\": 1, \"y\": \"\\u00e9\"} [] \"a\\\"b\""},
    {"{{ d|tojson(sort_keys=true, separators=(',', ':')) }}", "{\"a\":[1,2],\"k\":\"v\",\"z\":1}"},
    {"{{ undefined_var|default('dflt') }} {{ ''|default('e', true) }} {{ n|default(0) }}",
     "dflt e 7"},
    {"{{ '42'|int + 1 }} {{ '3.5'|float }} {{ 'x'|int }} {{ 'x'|int(9) }} {{ f|int }} {{ -3|abs }}",
     "43 3.5 0 9 2 3"},
    {"{{ n|string ~ f|string }} {{ b|string }} {{ xs|string }} {{ [1, 1, 2, 1]|unique }}",
     "72.5 true [3, 1, 2] [1, 2]"},
    {"{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}",
     "hi,ok"},
    {"{{ msgs|rejectattr('role', 'equalto', 'user')|length }} {{ msgs|selectattr('content')|length }}",
     "1 3"},
    {"{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}", "a\n    b\n\n    c|  a\n  b"},
    {"{{ 'a-b'|replace('-', '+') }} {{ d|dictsort|first }} {{ d|items|length }}",
     "a+b [\"a\", [1, 2]] 3"},
    {"{% filter upper %}shout {{ 'it' }}{% endfilter %}", "SHOUT IT"},
    // Tests.
    {"{{ s is string }}{{ n is number }}{{ n is integer }}{{ f is integer }}{{ d is mapping }}",
     "truetruetruefalsetrue"},
    {"{{ xs is iterable }}{{ d is iterable }}{{ xs is sequence }}{{ nul is none }}"
     "{{ b is boolean }}{{ b is true }}{{ b is false }}",
     "truefalsetruetruetruetruefalse"},
    {"{{ n is odd }}{{ n is even }}{{ nope is defined }}{{ nope is undefined }}{{ d is not none }}",
     "truefalsefalsetruetrue"},
    // Control flow.
    {"{% if n > 10 %}a{% elif n > 5 %}b{% else %}c{% endif %}", "b"},
    {"{% for x in xs %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}",
     "1/3,2/3,3/3"},
    {"{% for x in xs %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{% endfor %}",
     "03true12false21false"},
    {"{% for x in xs if x > 1 %}{{ x }}{% else %}none{% endfor %}|{% for x in [] %}{% else %}E{% endfor %}",
     "32|E"},
    {"{% for x in xs %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}", "32"},
    {"{% for x in xs %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}", "3"},
    {"{% for m in msgs[::-1] %}{{ m.role[0] }}{% endfor %}", "uau"},
    {"{% set x = 1 %}{% for i in xs %}{% set x = i %}{% endfor %}{{ x }}", "1"},
    {"{% set ns = namespace(x=1, y='a') %}{% for i in xs %}{% set ns.x = ns.x + i %}{% endfor %}"
     "{{ ns.x }}{{ ns.y }}",
     "7a"},
    {"{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set blk %}in {{ a }}{% endset %}[{{ blk }}]",
     "12[in 1]"},
    {"{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}",
     "012135"},
    // Macros and call blocks.
    {"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
     "{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}",
     "Hi A! Hi B? Hi C."},
    {"{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
     "{% call wrap('b') %}bold{% endcall %}",
     "<b>bold</b>"},
    {"{% macro f() %}{{ varargs|length }}{{ kwargs.k }}{% endmacro %}{{ f(1, 2, k='v') }}", "2v"},
    // Globals.
    {"{{ strftime_now('%Y-%m-%d %H:%M %b %B %%') }}", "2024-07-26 13:05 Jul July %"},
    {"{{ True }}{{ False }}{{ None }}", "truefalse"},
    // Generation tags (transformers' assistant masks) are dropped.
    {"a {% generation %}b{% endgeneration %} c|x {%- generation -%} y", "a b c|xy"},
};

std::vector<std::pair<std::string, Value>> Variables() {
  std::vector<std::pair<std::string, Value>> vars;
  const boost::json::value context = boost::json::parse(kContext);
  for (const auto& kv : context.as_object()) {
    vars.emplace_back(std::string(kv.key()), JsonToValue(kv.value()));
  }
  return vars;
}

RenderOptions FixedClock() {
  RenderOptions o;
  o.clock = [] { return BrokenDownTime{2024, 7, 26, 13, 5}; };
  return o;
}

TEST(TemplateTest, FeatureTable) {
  const auto vars = Variables();
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.tmpl);
    absl::StatusOr<Template> t = Template::Parse(c.tmpl, "table");
    ASSERT_TRUE(t.ok()) << t.status();
    absl::StatusOr<std::string> out = t->Render(vars, FixedClock());
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, c.expected);
  }
}

// The table's expectations are @huggingface/jinja's output too.
TEST(TemplateTest, FeatureTableMatchesReference) {
  STRATA_NODE_REFERENCES_OR_SKIP();
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.tmpl);
    boost::json::object request;
    request["template"] = c.tmpl;
    request["now"] = {2024, 7, 26, 13, 5};
    request["cases"] = boost::json::array{boost::json::object{{"context", boost::json::parse(kContext)}}};
    absl::StatusOr<std::string> answer =
        ::strata::testing::RunNodeReference("chat_template.mjs", boost::json::serialize(request));
    ASSERT_TRUE(answer.ok()) << answer.status();
    const boost::json::object r = boost::json::parse(*answer).as_array()[0].as_object();
    ASSERT_TRUE(r.at("ok").as_bool()) << r.at("error").as_string();
    EXPECT_EQ(std::string(r.at("text").as_string()), c.expected);
  }
}

absl::Status RenderError(const std::string& tmpl, RenderLimits limits = {}) {
  absl::StatusOr<Template> t = Template::Parse(tmpl, "bad.jinja");
  if (!t.ok()) return t.status();
  RenderOptions o;
  o.limits = limits;
  absl::StatusOr<std::string> out = t->Render(Variables(), o);
  return out.ok() ? absl::OkStatus() : out.status();
}

struct ErrorCase {
  const char* tmpl;
  const char* message;  // substring of the error
};

TEST(TemplateTest, ErrorsNameTemplateAndLine) {
  const ErrorCase kErrors[] = {
      {"ok\n{{ raise_exception('Roles must alternate') }}",
       "template 'bad.jinja' line 2: raise_exception: Roles must alternate"},
      {"a\n\n{% if %}", "template 'bad.jinja' line 3: "},
      {"{% for x in xs %}\n{{ x }}", "line 2: Unexpected end of template: missing {% endfor %}"},
      {"{% include 'x' %}", "line 1: Unknown statement type: include"},
      {"{{ 'unterminated }}", "Unexpected end of input"},
      {"{{ a ! b }}", "Unexpected character: !"},
      {"line1\n{{ xs | nosuchfilter }}", "line 2: Unknown ArrayValue filter: nosuchfilter"},
      {"{{ n is nosuchtest }}", "Unknown test: nosuchtest"},
      {"\n\n{{ undefined_var ~ 'x' }}", "line 3: Cannot perform operation ~ on undefined values"},
      {"{{ nul + 1 }}", "Cannot perform operation on null values"},
      {"{{ n() }}", "Cannot call something that is not a function: got IntegerValue"},
      {"{{ (1, 2) }}", "Cannot convert to JSON: TupleValue"},
      {"{% set d.k = 1 %}", "cannot assign attribute on non-namespace object"},
      {"{% break %}", "break outside of a loop"},
      {"{{ 9223372036854775807 + 1 }}", "integer overflow"},
  };
  for (const ErrorCase& c : kErrors) {
    const std::string tmpl = c.tmpl;
    SCOPED_TRACE(tmpl);
    const absl::Status status = RenderError(tmpl);
    EXPECT_FALSE(status.ok());
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
}

TEST(TemplateTest, HostileTemplatesFailCleanly) {
  RenderLimits small;
  small.max_steps = 200000;
  small.max_output_bytes = 1 << 20;
  // Unbounded recursion.
  EXPECT_EQ(RenderError("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").code(),
            absl::StatusCode::kResourceExhausted);
  // Exponential recursion within the depth bound.
  EXPECT_EQ(RenderError("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                        "{% endmacro %}{{ f(40) }}", small).code(),
            absl::StatusCode::kResourceExhausted);
  // Huge loops.
  EXPECT_EQ(RenderError("{% for i in range(1000000000) %}x{% endfor %}", small).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RenderError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                        "{% endfor %}", small).code(),
            absl::StatusCode::kResourceExhausted);
  // Exponential string growth.
  EXPECT_EQ(RenderError("{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
                        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}", small).code(),
            absl::StatusCode::kResourceExhausted);
  // Deep nesting in the source: parse errors, not stack overflows.
  const std::string parens = std::string(100000, '(') + "1" + std::string(100000, ')');
  EXPECT_THAT(std::string(RenderError("{{ " + parens + " }}").message()),
              HasSubstr("nested too deeply"));
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  EXPECT_THAT(std::string(RenderError(chain + " }}").message()), HasSubstr("nested too deeply"));
  std::string ifs;
  for (int i = 0; i < 10000; ++i) ifs += "{% if true %}";
  EXPECT_THAT(std::string(RenderError(ifs).message()), HasSubstr("nested too deeply"));
  // Oversized templates.
  EXPECT_FALSE(Template::Parse(std::string(Template::kMaxTemplateBytes + 1, 'x'), "big").ok());
}

TEST(TemplateTest, BuiltinsCannotBeRedefined) {
  absl::StatusOr<Template> t = Template::Parse("{{ x }}", "t");
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(std::string(t->Render({{"raise_exception", Value::Int(1)}}).status().message()),
              HasSubstr("Variable already declared: raise_exception"));
}

}  // namespace
}  // namespace strata::chat
