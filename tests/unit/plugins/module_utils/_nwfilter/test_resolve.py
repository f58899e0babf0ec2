# -*- coding: utf-8 -*-
import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import ResolveError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import instances, resolve


def filters(*docs):
    parsed = [parse_filter(d, strict=False) for d in docs]
    return dict((f.name, f) for f in parsed)


def combos(doc, variables):
    flt = filters(doc)
    name = list(flt)[0]
    result = []
    for item in resolve(name, flt, tuple(variables.items())):
        for inst in instances(item):
            result.append(tuple(attr[1] for attr in inst.attrs))
    return result


LISTS = {'A': ('1.1.1.1', '2.2.2.2', '3.3.3.3', '3.3.3.3'), 'B': ('80', '90', '80', '80')}


def test_parallel_iteration_skips_repeated_tuples():
    doc = "<filter name='f'><rule action='accept' direction='out'><tcp srcipaddr='$A' srcportstart='$B'/></rule></filter>"
    assert combos(doc, LISTS) == [('1.1.1.1', '80'), ('2.2.2.2', '90'), ('3.3.3.3', '80')]


def test_cross_product_first_iterator_fastest():
    doc = ("<filter name='f'><rule action='accept' direction='out'>"
           "<tcp srcipaddr='$A[@1]' srcportstart='$B[@2]'/></rule></filter>")
    assert combos(doc, LISTS) == [
        ('1.1.1.1', '80'), ('2.2.2.2', '80'), ('3.3.3.3', '80'),
        ('1.1.1.1', '90'), ('2.2.2.2', '90'), ('3.3.3.3', '90')]


def test_indexed_access_picks_one_element():
    doc = "<filter name='f'><rule action='accept' direction='out'><tcp srcipaddr='$A[1]' srcportstart='$B[1]'/></rule></filter>"
    assert combos(doc, LISTS) == [('2.2.2.2', '90')]


def test_unequal_list_lengths_in_one_iterator():
    doc = "<filter name='f'><rule action='accept' direction='out'><tcp srcipaddr='$A' srcportstart='$P'/></rule></filter>"
    with pytest.raises(ResolveError, match='Cardinality'):
        combos(doc, {'A': ('1.1.1.1', '2.2.2.2'), 'P': ('1',)})


def test_all_missing_variables_reported_at_once():
    doc = ("<filter name='f'><rule action='accept' direction='out'><tcp srcipaddr='$NOPE' dstipaddr='$A[7]'/></rule>"
           "<rule action='accept' direction='out'><udp srcipaddr='$IP'/></rule></filter>")
    with pytest.raises(ResolveError) as info:
        combos(doc, {'A': ('1.1.1.1',)})
    assert 'NOPE, A[7], IP' in str(info.value)


def test_caller_variables_override_filterref_parameters():
    flt = filters(
        "<filter name='top'><filterref filter='leaf'><parameter name='X' value='1.1.1.1'/>"
        "<parameter name='Y' value='2.2.2.2'/></filterref></filter>",
        "<filter name='leaf'><rule action='accept' direction='out'><udp srcipaddr='$X' dstipaddr='$Y'/></rule></filter>")
    (item,) = resolve('top', flt, (('X', ('9.9.9.9',)),))
    (inst,) = instances(item)
    assert inst.text('srcipaddr') == '9.9.9.9' and inst.text('dstipaddr') == '2.2.2.2'


def test_tree_is_expanded_depth_first_with_duplicates():
    flt = filters(
        "<filter name='top'><filterref filter='a'/><rule action='drop' direction='out'/><filterref filter='a'/></filter>",
        "<filter name='a' chain='ipv4'><rule action='accept' direction='out'><ip/></rule></filter>")
    expanded = resolve('top', flt, ())
    assert [(e.filter_name, e.chain, e.chain_priority) for e in expanded] == [
        ('a', 'ipv4', -700), ('top', 'root', 0), ('a', 'ipv4', -700)]


def test_missing_filter_and_cycle_named():
    flt = filters("<filter name='a'><filterref filter='b'/></filter>", "<filter name='b'><filterref filter='a'/></filter>",
                  "<filter name='c'><filterref filter='ghost'/></filter>")
    with pytest.raises(ResolveError, match='a -> b -> a'):
        resolve('a', flt, ())
    with pytest.raises(ResolveError, match="'ghost' is missing"):
        resolve('c', flt, ())
    with pytest.raises(ResolveError, match="'nothere' is not defined"):
        resolve('nothere', flt, ())


def test_filter_tree_lists_reachable_filters_once():
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import filter_tree
    flt = filters("<filter name='a'><filterref filter='b'/><filterref filter='c'/></filter>",
                  "<filter name='b'><filterref filter='c'/><filterref filter='ghost'/></filter>",
                  "<filter name='c'><filterref filter='a'/></filter>", "<filter name='d'/>")
    assert filter_tree('a', flt) == ('a', 'b', 'c')
    assert filter_tree('d', flt) == ('d',)
