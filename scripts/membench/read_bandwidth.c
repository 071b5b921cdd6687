// Single-core read bandwidth over buffers of 1 to 128 MB (best of 10 passes each): where the cache ends
// on this host. docs/benchmarks.md, "Session 8". Build and run:
//   gcc -O2 -mavx2 read_bandwidth.c -o read_bandwidth && ./read_bandwidth
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  for(size_t mb=1; mb<=128; mb*=2){
    size_t n=mb*1024*1024/4; float*a=aligned_alloc(64,n*4); for(size_t i=0;i<n;i++)a[i]=i*1e-9f;
    double best=1e9; __m256 acc=_mm256_setzero_ps(),acc2=_mm256_setzero_ps();
    for(int r=0;r<10;r++){double t0=now();
      for(size_t i=0;i<n;i+=16){acc=_mm256_add_ps(acc,_mm256_load_ps(a+i));acc2=_mm256_add_ps(acc2,_mm256_load_ps(a+i+8));}
      double t=now()-t0; if(t<best)best=t;}
    float s[8];_mm256_storeu_ps(s,_mm256_add_ps(acc,acc2));
    printf("%4zu MB read: %.1f GB/s (%g)\n",mb,n*4/best/1e9,s[0]);
    free(a);
  }
}
