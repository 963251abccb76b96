from treekit import Node, count, depth, preorder

TREE = Node(1, [Node(2, [Node(4)]), Node(3, [Node(5, [Node(6)])])])


def test_count():
    assert count(TREE) == 6
    assert count(None) == 0


def test_preorder():
    assert list(preorder(TREE)) == [1, 2, 4, 3, 5, 6]


def test_depth_empty():
    assert depth(None) == 0


def test_depth_single_node():
    assert depth(Node(7)) == 1


def test_depth_unbalanced():
    assert depth(TREE) == 4
