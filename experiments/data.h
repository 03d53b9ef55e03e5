/* Opens the dataset a config names (DESIGN 3): train and test splits after
 * the class range and the class-balanced subset are applied. */
#ifndef EWA_DATA_H
#define EWA_DATA_H
#include "../core/config.h"
#include "../datasets/dataset.h"

int data_open(const RunConfig *cfg, ImageSet *train, ImageSet *test, Err *err);

#endif
