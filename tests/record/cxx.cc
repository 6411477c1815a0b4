// cxx.cc: C++ new/delete reach the interposer through malloc/free (operator new in
// libstdc++ calls malloc).  Sizes 4001 and 4002 mark this program's own blocks; the
// volatile sink stops the compiler from eliding allocations it can see are unused.
#include <cstdio>
#include <new>

struct Block {
    char bytes[4001];
};

static void *volatile sink;

int main()
{
    Block *b[3];
    for (auto &p : b)
        sink = p = new Block();
    char *a = new char[4002];
    sink = a;
    char *c = new (std::nothrow) char[4002];
    sink = c;
    for (auto p : b)
        delete p;
    delete[] a;
    delete[] c;
    std::puts("done");
    return 0;
}
