package main

// Tests of README.md and DESIGN.md: the docs say what the program does.
// (The README's commands run in docs_linux_test.go.)
// The flag table is checked against -h, every Mermaid diagram against
// Mermaid's own parser, and the README's commands are run in order, as a
// newcomer would, and what they print is compared with what the README
// shows.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// fence is one fenced block of a Markdown file.
type fence struct {
	section string // the heading above it
	lang    string
	text    string
}

// fences returns the fenced blocks of a Markdown file, in order.
func fences(t *testing.T, file string) []fence {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []fence
	var cur *fence
	section, indent := "", ""
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			section = strings.TrimLeft(line, "# ")
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &fence{section: section, lang: strings.TrimPrefix(trimmed, "```")}
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))] // a block inside a list item
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	return out
}

// fenceIn returns the n-th (from 0) block of lang in section.
func fenceIn(t *testing.T, blocks []fence, section, lang string, n int) string {
	t.Helper()
	for _, b := range blocks {
		if b.section == section && b.lang == lang {
			if n == 0 {
				return b.text
			}
			n--
		}
	}
	t.Fatalf("README.md has no %s block %d under %q", lang, n, section)
	return ""
}

// TestReadmeFlagTable: every flag of -h is in the README's table, with its
// long name and its default, and the table has no other.
func TestReadmeFlagTable(t *testing.T) {
	is := is.New(t)
	var help bytes.Buffer
	run(context.Background(), []string{"peerdisc", "-h"}, io.Discard, &help)
	type flagDoc struct{ long, def string }
	fromHelp := map[string]flagDoc{}
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+?)(?:, --(\S+))?\s{2,}.*?(?: \(default ([^)]*)\))?$`).FindAllStringSubmatch(help.String(), -1) {
		fromHelp[m[1]] = flagDoc{m[2], m[3]}
	}
	readme, err := os.ReadFile("README.md")
	is.NoErr(err)
	fromReadme := map[string]flagDoc{}
	for _, m := range regexp.MustCompile("(?m)^\\| `-([a-z]+)`(?:, `--([a-z_]+)`)? \\| .* \\| (.*) \\|$").FindAllStringSubmatch(string(readme), -1) {
		fromReadme[m[1]] = flagDoc{m[2], strings.ReplaceAll(m[3], "`", "")}
	}
	is.True(len(fromHelp) >= 15) // -h was read
	for name, h := range fromHelp {
		r, ok := fromReadme[name]
		if !ok {
			t.Errorf("-%s is in -h but not in README.md's flag table", name)
			continue
		}
		if r.long != h.long {
			t.Errorf("-%s: README.md says --%s, -h says --%s", name, r.long, h.long)
		}
		if h.def != "" && !strings.Contains(r.def, h.def) {
			t.Errorf("-%s: README.md's default %q, -h says %s", name, r.def, h.def)
		}
	}
	for name := range fromReadme {
		if _, ok := fromHelp[name]; !ok {
			t.Errorf("README.md's flag table has -%s, which -h does not list", name)
		}
	}
}

// TestMermaidParses runs every Mermaid diagram of the docs, and one that
// -role=map draws, through Mermaid's own parser (testdata/mermaid-parse.mjs).
// It needs node and the mermaid package from npm: .ci/run installs it and
// sets PEERDISC_MERMAID.
func TestMermaidParses(t *testing.T) {
	dir := os.Getenv("PEERDISC_MERMAID")
	node, err := exec.LookPath("node")
	if dir == "" || err != nil {
		t.Skip("needs node and PEERDISC_MERMAID, a directory where `npm install mermaid@11 jsdom@26` ran (.ci/run makes one)")
	}
	is := is.New(t)
	var diagrams, where []string
	for _, file := range []string{"README.md", "DESIGN.md"} {
		for _, b := range fences(t, file) {
			if b.lang == "mermaid" {
				diagrams, where = append(diagrams, b.text), append(where, file+", "+b.section)
			}
		}
	}
	is.True(len(diagrams) >= 2) // the README's map and DESIGN.md's sequence diagram
	a, b, c, x := nodeAt("127.0.0.1", 42020), nodeAt("127.0.0.2", 5000),
		nodeAt("::1", 5001), nodeAt("127.0.0.9", 9)
	var drawn bytes.Buffer
	netMap{lists: map[Node][]Node{a: {b, c, x}, b: {a, c}, c: {b}}, dead: []Node{x}}.mermaid(&drawn)
	diagrams = append(diagrams, strings.TrimSuffix(strings.TrimPrefix(drawn.String(), "```mermaid\n"), "```\n"))
	where = append(where, "-role=map's output")
	in, _ := json.Marshal(diagrams)
	cmd := exec.Command(node, "testdata/mermaid-parse.mjs")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(diagrams) {
		t.Fatalf("mermaid-parse.mjs: %v\n%s", err, out)
	}
	for i, line := range lines {
		if line != "ok" {
			t.Errorf("%s: Mermaid cannot parse it: %s\n%s", where[i], line, diagrams[i])
		}
	}
}

// logShape is a pattern for a log line or a message quoted in the docs:
// the times, numbers, addresses and lists in it differ from run to run.
func logShape(quote string) *regexp.Regexp {
	p := regexp.QuoteMeta(quote)
	p = regexp.MustCompile(`time=\S+`).ReplaceAllString(p, `time=\S+`)
	p = regexp.MustCompile(`"?\\\[.*?\\\]"?`).ReplaceAllString(p, `"?\[[^\]]*\]"?`)
	p = regexp.MustCompile(`took=\S+`).ReplaceAllString(p, `took=\S+`)
	p = regexp.MustCompile(`[0-9]+`).ReplaceAllString(p, `[0-9]+`)
	return regexp.MustCompile(p)
}

// readmeQuote returns the README's quote that matches pattern: a whole
// line of a block, or a span in backquotes.
func readmeQuote(t *testing.T, pattern string) string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	quote := regexp.MustCompile(pattern).FindString(string(data))
	if quote == "" {
		t.Fatalf("README.md quotes nothing like %s", pattern)
	}
	return strings.Trim(strings.TrimSpace(quote), "`")
}

// dirNames lists the names in a directory.
func dirNames(entries []os.DirEntry) (out []string) {
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestDocsNameRealCode: every test, benchmark and Type.method of ours that
// the docs name exists, so that a reader who looks for one finds it.
func TestDocsNameRealCode(t *testing.T) {
	var code strings.Builder
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(data)
	}
	for _, doc := range []string{"README.md", "DESIGN.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile("\\b(?:Test|Benchmark|Fuzz)[A-Z0-9]\\w*").FindAllString(string(data), -1) {
			if !regexp.MustCompile(`func ` + m + `\(`).MatchString(code.String()) {
				t.Errorf("%s names %s, which does not exist", doc, m)
			}
		}
		for _, m := range regexp.MustCompile("`([A-Za-z]+)\\.([A-Za-z]+)`").FindAllStringSubmatch(string(data), -1) {
			ours := strings.Contains(code.String(), "\ntype "+m[1]+" ") && m[2] != "go" // not net/http's, nor a file name
			if ours && !regexp.MustCompile(`func \(\w+ \*?`+m[1]+`\) `+m[2]+`\(`).MatchString(code.String()) {
				t.Errorf("%s names %s.%s, which does not exist", doc, m[1], m[2])
			}
		}
	}
}
