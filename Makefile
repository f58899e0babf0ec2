# hypervisor.netfilter: developer entry points. Every target installs what it
# needs first (scripts/bootstrap.sh: Debian packages as root, the .venv);
# that step takes well under a second once done.
#
#   make test          every suite below, then a summary (what CI runs)
#   make demo          throwaway hypervisor in namespaces + the example playbooks
#   make sanity        ansible-test sanity (all tests, no ignore file)
#   make units         ansible-test units (tests/unit)
#   make conformance   pytest tests/conformance (libvirt's test vectors)
#   make corpus        pytest tests/corpus (other projects' nwfilter test cases)
#   make kernel        pytest kernel tests (tests/lib, tests/kernel): root, namespaces
#   make differential  pytest tests/differential (against a real libvirt in a namespace)
#   make other         pytest on tests/<dir> that no suite above claims
#   make integration   ansible-test integration targets inside a throwaway hypervisor
#   make lint          ansible-lint --profile production on roles/ and examples/
#   make build         ansible-galaxy collection build (into a temp dir)
#   make bootstrap     only install the test dependencies
#   make clean         remove .venv, test output and the ansible-test copy
#
# Pass pytest options with HNF_PYTEST_ARGS='-x -k name', ansible-test sanity
# options with HNF_SANITY_ARGS='--test pep8'.

SUITES := sanity units conformance corpus kernel differential other integration lint build

.PHONY: test demo bootstrap clean $(SUITES)

test:
	bash scripts/test.sh

$(SUITES):
	bash scripts/test.sh $@

demo:
	bash scripts/demo.sh

bootstrap:
	bash scripts/bootstrap.sh

clean:
	rm -rf .venv tests/output .ansible/collections
	rm -rf "$${TMPDIR:-/tmp}/hnf-collection-$$(printf %s "$(CURDIR)" | sha1sum | cut -c1-10)"
