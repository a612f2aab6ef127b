package archtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Ensure README's "Reading the source" names every package of the module,
// each in a row of its own or under its parent's row as "(+`sub`, …)"
// ("`dir/…`" covers everything below dir), and names no package that is
// gone.
func TestReadmeListsEveryPackage(t *testing.T) {
	pkgs := listPackages(t)
	root := filepath.Dir(filepath.Dir(mustGetwd(t)))
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	exact, prefixes := readmePackages(t, string(readme))
	listed := map[string]bool{}
	for path, p := range pkgs {
		r, ok := rel(path)
		if !ok || p.Module == nil || p.Module.Path != module {
			continue
		}
		if r == "" {
			r = "."
		}
		listed[r] = true
		if exact[r] {
			continue
		}
		covered := false
		for _, pre := range prefixes {
			covered = covered || strings.HasPrefix(r, pre)
		}
		if !covered {
			t.Errorf("README's Reading the source does not list package %s", r)
		}
	}
	for r := range exact {
		if !listed[r] && !dirExists(filepath.Join(root, r)) {
			t.Errorf("README's Reading the source lists %s, which is not in the tree", r)
		}
	}
}

var backticked = regexp.MustCompile("`([^`]+)`")

// readmePackages reads the package table of README's "Reading the source":
// the packages its rows name and the folders whose every package a row
// covers.
func readmePackages(t *testing.T, readme string) (exact map[string]bool, prefixes []string) {
	_, section, ok := strings.Cut(readme, "\n## Reading the source\n")
	if !ok {
		t.Fatal(`README has no "## Reading the source" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	exact = map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		names := backticked.FindAllStringSubmatch(first, -1)
		base := strings.TrimSuffix(names[0][1], "/")
		add := func(p string) {
			if rest, ok := strings.CutSuffix(p, "/…"); ok {
				prefixes = append(prefixes, rest+"/")
				return
			}
			exact[p] = true
		}
		if strings.HasSuffix(names[0][1], "/") {
			prefixes = append(prefixes, base+"/")
		}
		add(base)
		for _, n := range names[1:] {
			add(base + "/" + n[1])
		}
	}
	if len(exact) == 0 {
		t.Fatal(`README's "Reading the source" has no package table`)
	}
	return exact, prefixes
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func dirExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}
