// Command varmenne-deb builds varmenne's Debian package (packaging/deb) from a built
// binary: make deb runs it as
//
//	go run ./packaging/cmd/varmenne-deb -binary bin/varmenne -out bin/
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/varmenne/varmenne/packaging/deb"
)

func main() {
	binary := flag.String("binary", "bin/varmenne", "the varmenne binary to package")
	version := flag.String("version", "", "Debian version (default: from the commit the binary was built from)")
	out := flag.String("out", "bin", "directory the package is written to, as varmenne_VERSION_ARCH.deb")
	repo := flag.String("repo", ".", "the repository checkout (packaging/deb/files, docs/install.md)")
	flag.Parse()
	if err := run(*repo, *binary, *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "varmenne-deb: "+err.Error())
		os.Exit(1)
	}
}

func run(repo, binary, version, outDir string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(outDir, ".varmenne.deb.tmp")
	pkg, err := deb.Build(deb.Options{Repo: repo, Binary: binary, Version: version, Out: tmp})
	if err != nil {
		return err
	}
	final := filepath.Join(outDir, pkg.FileName())
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	fmt.Println(final)
	return nil
}
