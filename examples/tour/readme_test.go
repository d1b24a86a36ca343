package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTour runs every snippet the README shows.
func TestTour(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("tour: %v\n%s", err, out.String())
	}
	for _, want := range []string{"etcd greeter 1 instance(s)", "greeter: 1 instance(s)", "configured: 1 instance(s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tour output lacks %q:\n%s", want, out.String())
		}
	}
}

var update = flag.Bool("update", false, "rewrite the README's Go blocks from their source regions")

var (
	srcMarker = regexp.MustCompile(`^<!-- readme:src (\S+)#(\S+) -->$`)
	repoRoot  = filepath.Join("..", "..")
)

// TestREADMECompiles: every Go block of the README is preceded by a
// "<!-- readme:src FILE#NAME -->" line and equals, byte for byte (less the
// common indentation), the region between "// readme:begin NAME" and
// "// readme:end NAME" in FILE, which compiles (FILE is part of the module)
// and, for this file, runs in TestTour.
func TestREADMECompiles(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(readme), "\n")
	blocks := 0
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```go" {
			continue
		}
		blocks++
		end := i + 1
		for end < len(lines) && lines[end] != "```" {
			end++
		}
		if end == len(lines) {
			t.Fatalf("README line %d: unterminated Go block", i+1)
		}
		block := strings.Join(lines[i+1:end], "\n")
		m := srcMarker.FindStringSubmatch(prevNonEmpty(lines, i))
		if m == nil {
			t.Errorf("README line %d: Go block without a <!-- readme:src FILE#NAME --> line before it", i+1)
			i = end
			continue
		}
		region, err := sourceRegion(filepath.Join(repoRoot, m[1]), m[2])
		if err != nil {
			t.Errorf("README line %d: %v", i+1, err)
		} else if region != block && *update {
			lines = append(lines[:i+1], append(strings.Split(region, "\n"), lines[end:]...)...)
			end = i + 1 + strings.Count(region, "\n") + 1
		} else if region != block {
			t.Errorf("README line %d: block differs from %s#%s; the README should show:\n%s", i+1, m[1], m[2], region)
		}
		i = end
	}
	if blocks == 0 {
		t.Fatal("README has no Go blocks")
	}
	if *update {
		if err := os.WriteFile(filepath.Join(repoRoot, "README.md"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func prevNonEmpty(lines []string, i int) string {
	for j := i - 1; j >= 0; j-- {
		if strings.TrimSpace(lines[j]) != "" {
			return lines[j]
		}
	}
	return ""
}

// sourceRegion returns the lines between the readme:begin and readme:end
// markers of name in path, without their common leading tabs.
func sourceRegion(path, name string) (string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var region []string
	in, found := false, false
	for _, l := range strings.Split(string(src), "\n") {
		switch strings.TrimSpace(l) {
		case "// readme:begin " + name:
			in, found = true, true
			continue
		case "// readme:end " + name:
			in = false
			continue
		}
		if in {
			region = append(region, l)
		}
	}
	if !found {
		return "", fmt.Errorf("%s: no region %q", path, name)
	}
	indent := -1
	for _, l := range region {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, "\t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range region {
		if len(l) >= indent && indent > 0 {
			region[i] = l[indent:]
		}
	}
	return strings.Join(region, "\n"), nil
}
