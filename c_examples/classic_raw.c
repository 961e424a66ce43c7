/*
 * classic_raw.c - the classic example, kept as it was taught: open + lseek + mmap(MAP_SHARED) +
 * fork, the child writes, the parent reads. Ported faithfully from a C tutorial on mmap IPC (its
 * comments are in Chinese; English follows each). Changes: `(void)argc; (void)argv;` and the
 * return-value checks the compiler flags demand, nothing else. classic_file.c is the same program
 * on libmmipc; see c_examples/README.md for what this version gets wrong.
 *
 * Run it in a directory holding a non-empty test.txt:  ./classic_raw  ->  read data : nihao father!!
 */
/*
    #include <sys/mman.h>

    void *mmap(void *addr, size_t length, int prot, int flags,int fd, off_t offset);
        - 用途：用于设置内存映射                       (purpose: set up a memory mapping)
        - 参数                                           (arguments)
            - void *addr: NULL,由内核指定               (NULL: the kernel chooses)
            - length : 要映射的数据的长度,这个值不能为0。建议使用文件的长度
                    获取文件长度： stat lseek           (length to map, never 0; use the file's
                                                         length, from stat or lseek)
            - prot : 对申请的内存映射区的操作权限      (access to the mapping)
                - PROT_EXEC  可执行                      (executable)
                - PROT_READ  读权限                      (read)
                - PROT_WRITE 写权限                      (write)
                - PROT_NONE  无权限                      (none)
                要操作映射内存，必须有读权限            (using the mapping needs read permission)
            - flags :
                MAP_SHARED: 映射器的数据会自动和磁盘文件同步，进程间通信，必须设置
                                                         (kept in sync with the file; required for IPC)
                MAP_PRIVATE： 不同步，内存映射区的数据改变了，对原本的文件不影响，会产生新文件（写时拷贝）
                                                         (not synced: copy-on-write, the file is untouched)
            - fd :  需要映射的文件的文件描述符          (descriptor of the file to map)
                - open得到                               (from open)
                - 注意：文件的大小不能为0且权限不能与prot中的冲突
                                                         (the file must not be empty, and its open mode
                                                          must allow prot)
            - offset: 偏移量，一般不用，必须指定为4k的倍数，0表示不偏移
                                                         (offset: a multiple of 4k, usually 0)
        - 返回值                                         (returns)
            返回创建内存的首地址                         (the mapping's address)
            失败返回 MAP_FAILED  (that is, (void *) -1) 设置错误号   (MAP_FAILED and errno on failure)

    int munmap(void *addr, size_t length);
       - 功能： 释放内存映射                             (release the mapping)
       - 参数：
            - addr : 要释放的内存地址                    (address to release)
            - length : 要释放的内存大小，要和mmap中的length参数的大小一样
                                                         (length, the same as given to mmap)
*/
/*
使用内存映射实现进程间通信:                             (IPC with memory mappings:)
1.有关系的进程(父子进程)                                 (1. related processes, parent and child)
    - 还没有子进程的时候                                 (   before the child exists)
        - 通过唯一的父进程， 先创建内存映射区            (   the parent creates the mapping)
    - 有了内存映射区以后，创建子进程                     (   then creates the child)
    - 父子进程共享创建的内存映射区                       (   and both share the mapping)
2.没有关系的进程间通信                                   (2. unrelated processes)
    - 准备一个大小不是0的磁盘文件                        (   prepare a non-empty file on disk)
    - 进程1通过磁盘文件创建内存映射区                    (   process 1 maps the file)
        - 得到一个操作这块内存的指针                     (   and gets a pointer to the memory)
    - 进程2通过磁盘文件创建内存映射区                    (   process 2 maps the same file)
        - 得到一个操作这块内存的指针                     (   and gets a pointer too)
    -使用内存映射区通信                                  (   they communicate through it)

注意:内存映射区通信，是非阻塞。                         (note: mapped-memory IPC does not block)
*/

#include <sys/mman.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>
#include <string.h>
#include <stdlib.h>
#include <wait.h>

int main(int argc, char const *argv[])
{
    (void)argc;
    (void)argv;
    //打开文件                                       (open the file)
    int fd = open("test.txt", O_RDWR);
    int size = lseek(fd, 0, SEEK_END); //获取文件大小 (get the file's size)

    //创建内存映射区                                 (create the mapping)
    void *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if(ptr == MAP_FAILED){
        perror("mmap");
        exit(-1);
    }

    //创建子进程                                     (create the child)
    pid_t pid = fork();
    if(pid>0 ){
        //父进程                                     (parent)
        wait(NULL);
        char buf[64];
        strcpy(buf,(char *)ptr);
        printf("read data : %s\n",buf);

    }else if(pid == 0){
        //子进程                                     (child)
        strcpy((char *)ptr,"nihao father!!");
    }
    munmap(ptr,size);
    return 0;
}

// 内存映射也可以进行文件拷贝，匿名映射（只能在父子···进程之前通信）（使用MAP_ANONYMOUS）
// (Mappings can also copy files (copy_file.c), and anonymous mappings (MAP_ANONYMOUS) serve
//  parent and child only (classic_anon.c).)
