// Command shape reports the shape of the packages of a Go module, for
// scripts/shape.sh: per package, its files and non-test lines, its longest
// function, its mutexes, and the pairs of its files that use each other's
// declarations both ways (file A uses something declared in file B and B
// something declared in A: the two cannot be read apart).
//
// A declaration is anything with a position in a file of the package: a
// top-level func, type, var or const, a method, a struct field. Uses are
// resolved by go/types over the non-test files, with export data from `go
// list -export`.
//
// Usage: go run ./scripts/shape [-pairs] [packages]   (default ./...)
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

type listed struct {
	ImportPath string
	Dir        string
	Name       string
	GoFiles    []string
	Export     string
	Standard   bool
	DepOnly    bool
}

func main() {
	showPairs := flag.Bool("pairs", false, "list the pairs of files of each package")
	why := flag.Bool("why", false, "with -pairs: name what each file of a pair uses of the other")
	flag.Parse()
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	pkgs, err := list(patterns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shape:", err)
		os.Exit(1)
	}
	exports := map[string]string{}
	for _, p := range pkgs {
		exports[p.ImportPath] = p.Export
	}
	fmt.Printf("%-34s %5s %6s %5s %5s  %s\n", "package", "files", "lines", "mutex", "pairs", "longest function")
	var total struct{ files, lines, mutexes, pairs int }
	for _, p := range pkgs {
		if p.DepOnly || p.Standard || len(p.GoFiles) == 0 {
			continue
		}
		s, err := measure(p, exports)
		if err != nil {
			fmt.Fprintf(os.Stderr, "shape: %s: %v\n", p.ImportPath, err)
			os.Exit(1)
		}
		name := strings.TrimPrefix(p.ImportPath, "github.com/regchain/regchain/")
		fmt.Printf("%-34s %5d %6d %5d %5d  %s (%d lines)\n", name, s.files, s.lines, s.mutexes, len(s.pairs), s.longest, s.longestN)
		if *showPairs {
			for _, pr := range s.pairs {
				fmt.Printf("    %s <-> %s\n", pr[0], pr[1])
				if *why {
					fmt.Printf("        %s uses %s\n", pr[0], strings.Join(s.names[pr], " "))
					fmt.Printf("        %s uses %s\n", pr[1], strings.Join(s.names[[2]string{pr[1], pr[0]}], " "))
				}
			}
		}
		total.files += s.files
		total.lines += s.lines
		total.mutexes += s.mutexes
		total.pairs += len(s.pairs)
	}
	fmt.Printf("%-34s %5d %6d %5d %5d\n", "total", total.files, total.lines, total.mutexes, total.pairs)
}

// list runs go list -deps -export on the patterns.
func list(patterns []string) ([]listed, error) {
	args := append([]string{"list", "-deps", "-export", "-json=ImportPath,Dir,Name,GoFiles,Export,Standard,DepOnly"}, patterns...)
	cmd := exec.Command("go", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, errb.String())
	}
	var pkgs []listed
	dec := json.NewDecoder(&out)
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

type shape struct {
	files, lines, mutexes int
	longest               string
	longestN              int
	pairs                 [][2]string
	names                 map[[2]string][]string // what file a uses of file b, sorted
}

func measure(p listed, exports map[string]string) (*shape, error) {
	fset := token.NewFileSet()
	var files []*ast.File
	s := &shape{files: len(p.GoFiles)}
	for _, f := range p.GoFiles {
		path := filepath.Join(p.Dir, f)
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		af, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, af)
		s.lines += bytes.Count(src, []byte("\n"))
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		e, ok := exports[path]
		if !ok || e == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(e)
	})
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
	conf := types.Config{Importer: imp}
	pkg, err := conf.Check(p.ImportPath, fset, files, info)
	if err != nil {
		return nil, err
	}
	// The longest function, and the mutexes (struct fields and variables).
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Body == nil {
					return true
				}
				l := fset.Position(n.End()).Line - fset.Position(n.Pos()).Line + 1
				if l > s.longestN {
					s.longestN = l
					s.longest = funcName(n)
				}
			case *ast.Field:
				s.mutexes += len(max1(n.Names)) * isMutex(n.Type)
			case *ast.ValueSpec:
				if n.Type != nil {
					s.mutexes += len(n.Names) * isMutex(n.Type)
				}
			}
			return true
		})
	}
	// Which file uses which file's declarations.
	uses := map[[2]string]bool{}
	named := map[[2]string]map[string]bool{}
	note := func(from token.Pos, obj types.Object) {
		if obj == nil || obj.Pkg() != pkg || !obj.Pos().IsValid() {
			return
		}
		a := filepath.Base(fset.Position(from).Filename)
		b := filepath.Base(fset.Position(obj.Pos()).Filename)
		if a != b {
			k := [2]string{a, b}
			uses[k] = true
			if named[k] == nil {
				named[k] = map[string]bool{}
			}
			named[k][obj.Name()] = true
		}
	}
	for id, obj := range info.Uses {
		note(id.Pos(), obj)
	}
	for sel, selection := range info.Selections {
		note(sel.Sel.Pos(), selection.Obj())
	}
	for k := range uses {
		if k[0] < k[1] && uses[[2]string{k[1], k[0]}] {
			s.pairs = append(s.pairs, k)
		}
	}
	s.names = map[[2]string][]string{}
	for k, m := range named {
		for n := range m {
			s.names[k] = append(s.names[k], n)
		}
		sort.Strings(s.names[k])
	}
	sort.Slice(s.pairs, func(i, j int) bool {
		if s.pairs[i][0] != s.pairs[j][0] {
			return s.pairs[i][0] < s.pairs[j][0]
		}
		return s.pairs[i][1] < s.pairs[j][1]
	})
	return s, nil
}

// max1 returns names, or one blank name for an embedded field.
func max1(names []*ast.Ident) []*ast.Ident {
	if len(names) == 0 {
		return []*ast.Ident{nil}
	}
	return names
}

func isMutex(e ast.Expr) int {
	if sel, ok := e.(*ast.SelectorExpr); ok {
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == "sync" && (sel.Sel.Name == "Mutex" || sel.Sel.Name == "RWMutex") {
			return 1
		}
	}
	return 0
}

func funcName(f *ast.FuncDecl) string {
	if f.Recv == nil || len(f.Recv.List) == 0 {
		return f.Name.Name
	}
	t := f.Recv.List[0].Type
	if st, ok := t.(*ast.StarExpr); ok {
		t = st.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	if ix, ok := t.(*ast.IndexListExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + f.Name.Name
	}
	return f.Name.Name
}
